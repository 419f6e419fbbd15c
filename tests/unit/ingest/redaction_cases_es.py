"""Labelled Spanish snippets: (text, [(entity, exact substring)]).

Ids are synthetic but valid (DNI/NIE check letters, IBAN mod 97, card Luhn); phones are
valid numbering-plan numbers. Negatives must come out untouched.
"""

CASES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Para dar de alta el acceso, escriba a María García López a maria.garcia@empresa.es.",
        [("PERSON", "María García López"), ("EMAIL_ADDRESS", "maria.garcia@empresa.es")],
    ),
    (
        "Si el servicio no responde, llame al técnico de guardia al +34 612 345 678.",
        [("PHONE_NUMBER", "+34 612 345 678")],
    ),
    (
        "La factura se pagó con la tarjeta 4111 1111 1111 1111 el pasado martes.",
        [("CREDIT_CARD", "4111 1111 1111 1111")],
    ),
    (
        "Transfiera la fianza a la cuenta ES91 2100 0418 4502 0005 1332 antes del viernes.",
        [("IBAN_CODE", "ES91 2100 0418 4502 0005 1332")],
    ),
    (
        "El empleado Javier Martínez Ruiz, con DNI 53464097E, se incorpora el lunes.",
        [("PERSON", "Javier Martínez Ruiz"), ("ES_NIF", "53464097E")],
    ),
    (
        "La solicitante presentó su NIE X8513358T en la oficina de extranjería.",
        [("ES_NIE", "X8513358T")],
    ),
    (
        "Carmen Sánchez aprobó el cambio y Luis Fernández revisó el plan de vuelta atrás.",
        [("PERSON", "Carmen Sánchez"), ("PERSON", "Luis Fernández")],
    ),
    (
        "Para incidencias de facturación, contacte con soporte@tienda-online.es "
        "o llame al 912 345 678.",
        [("EMAIL_ADDRESS", "soporte@tienda-online.es"), ("PHONE_NUMBER", "912 345 678")],
    ),
    (
        "El cliente Pedro Gómez indica que su tarjeta 5555 5555 5555 4444 se cobró dos veces.",
        [("PERSON", "Pedro Gómez"), ("CREDIT_CARD", "5555 5555 5555 4444")],
    ),
    (
        "La base de datos escucha en 10.0.4.17 y la réplica en 10.0.4.18.",
        [("IP_ADDRESS", "10.0.4.17"), ("IP_ADDRESS", "10.0.4.18")],
    ),
    (
        "Datos del trabajador: DNI 30246633-T, fecha de alta 1 de abril de 2023.",
        [("ES_NIF", "30246633-T")],
    ),
    (
        "Envíe el contrato firmado a recursos.humanos@grupo-iberia.com antes del cierre.",
        [("EMAIL_ADDRESS", "recursos.humanos@grupo-iberia.com")],
    ),
    (
        "Las devoluciones se abonan en ES76 5280 8414 8525 3888 5393 en diez días hábiles.",
        [("IBAN_CODE", "ES76 5280 8414 8525 3888 5393")],
    ),
    (
        "Ana Belén Torres coordinará la migración del clúster a Qdrant la próxima semana.",
        [("PERSON", "Ana Belén Torres")],
    ),
    (
        "Teléfono de contacto del proveedor: +34 91 123 45 67 (horario de oficina).",
        [("PHONE_NUMBER", "+34 91 123 45 67")],
    ),
    (
        "La residente extranjera con NIE Y1171979M solicitó la renovación de su permiso.",
        [("ES_NIE", "Y1171979M")],
    ),
    (
        "Firmado por Roberto Díaz Herrera, responsable de la versión, en nombre del equipo.",
        [("PERSON", "Roberto Díaz Herrera")],
    ),
    (
        "Pague con la tarjeta 4012 8888 8888 1881 o por transferencia a "
        "ES70 3633 8750 0474 3957 5513.",
        [
            ("CREDIT_CARD", "4012 8888 8888 1881"),
            ("IBAN_CODE", "ES70 3633 8750 0474 3957 5513"),
        ],
    ),
    (
        "Si tiene dudas sobre la API, escriba a ayuda@ejemplo.org e indique el ticket 48213.",
        [("EMAIL_ADDRESS", "ayuda@ejemplo.org")],
    ),
    (
        "Mi móvil es el 654 32 10 98, llámame después de las cinco.",
        [("PHONE_NUMBER", "654 32 10 98")],
    ),
    (
        "Según Lucía Romero, la actualización no afecta a los usuarios de Valencia.",
        [("PERSON", "Lucía Romero")],
    ),
    (
        "Documento nacional de identidad del titular: 62992312G.",
        [("ES_NIF", "62992312G")],
    ),
    (
        "Acta de la reunión: Marta Navarro y Sergio Molina acordaron retrasar el lanzamiento.",
        [("PERSON", "Marta Navarro"), ("PERSON", "Sergio Molina")],
    ),
    (
        "Para urgencias fuera de horario, marque el +34 955 12 34 56 o escriba a "
        "guardia@hospital-sur.es.",
        [("PHONE_NUMBER", "+34 955 12 34 56"), ("EMAIL_ADDRESS", "guardia@hospital-sur.es")],
    ),
    (
        "La trabajadora, con NIE Z0953324W y domicilio en Sevilla, firmó el contrato.",
        [("ES_NIE", "Z0953324W")],
    ),
    (
        "El proveedor factura a la cuenta ES38 1373 5379 9075 1163 7265 cada mes.",
        [("IBAN_CODE", "ES38 1373 5379 9075 1163 7265")],
    ),
    (
        "Haga ping al router en 192.168.10.1 desde el bastión antes de abrir una incidencia.",
        [("IP_ADDRESS", "192.168.10.1")],
    ),
    (
        "El paciente José Antonio Vidal, DNI 97366946B, acudió a consulta el jueves.",
        [("PERSON", "José Antonio Vidal"), ("ES_NIF", "97366946B")],
    ),
    (
        "Reserva a nombre de Elena Castro, teléfono 699 123 456, para dos personas.",
        [("PERSON", "Elena Castro"), ("PHONE_NUMBER", "699 123 456")],
    ),
    (
        "Cobro rechazado para la tarjeta 3782 822463 10005; pida otra forma de pago.",
        [("CREDIT_CARD", "3782 822463 10005")],
    ),
    (
        "Tal como dijo Miguel de Cervantes, la diligencia es madre de la buena ventura.",
        [("PERSON", "Miguel de Cervantes")],
    ),
    (
        "Correo del responsable de datos: dpo@ayuntamiento-ejemplo.es.",
        [("EMAIL_ADDRESS", "dpo@ayuntamiento-ejemplo.es")],
    ),
    (
        "Francisco Jiménez solicitó el reembolso; su NIF es 16480894Z.",
        [("PERSON", "Francisco Jiménez"), ("ES_NIF", "16480894Z")],
    ),
    (
        "Para soporte en México llame al +52 55 1234 5678 en horario laboral.",
        [("PHONE_NUMBER", "+52 55 1234 5678")],
    ),
    (
        "Isabel Ortega Prieto dejará la empresa a final de mes.",
        [("PERSON", "Isabel Ortega Prieto")],
    ),
    (
        "La transferencia internacional llegó desde DE89 3704 0044 0532 0130 00 sin incidencias.",
        [("IBAN_CODE", "DE89 3704 0044 0532 0130 00")],
    ),
    # Negativos: prosa técnica y general que debe quedar intacta.
    ("Instale el paquete con pip, ejecute las migraciones con Alembic y reinicie Uvicorn.", []),
    ("El enrutador de FastAPI valida el cuerpo JSON con Pydantic antes de llamar al servicio.", []),
    ("Configure MAX_WORKERS a 8 y TIMEOUT a 30 segundos en el fichero YAML.", []),
    ("Nuestras oficinas de Madrid, Barcelona y Bilbao cierran a las seis en días festivos.", []),
    ("La versión 2.4.1 corrige una fuga de memoria en el índice HNSW al borrar vectores.", []),
    ("El informe trimestral muestra que los ingresos crecieron un 12 por ciento.", []),
    ("Use los secretos de Kubernetes en lugar de variables de entorno para las contraseñas.", []),
    (
        "Si los trabajadores de Celery se bloquean, revise la memoria de Redis y reinicie Flower.",
        [],
    ),
    ("El pedido 2024-00817 se enviará el 15 de marzo de 2024 desde el almacén central.", []),
    ("La reunión anual se celebrará en Valencia el próximo otoño.", []),
    ("El modelo de lenguaje responde en menos de 200 milisegundos con caché activada.", []),
    ("Reinicie el contenedor y compruebe los registros en /var/log/ragops.", []),
    ("El plan Premium incluye 50 GB de almacenamiento y copias de seguridad diarias.", []),
    ("Para instalar Docker en Ubuntu, siga la guía oficial y añada su usuario al grupo.", []),
    ("La tabla de precios se actualiza cada trimestre según el índice de inflación.", []),
    ("El puerto 8080 está ocupado; cambie la variable PORT en el fichero de entorno.", []),
    ("La biblioteca de Salamanca conserva manuscritos del siglo XV.", []),
    (
        "Llame a la función get_user(id) y compruebe el campo Status; reintente ante un HTTP 503.",
        [],
    ),
    (
        "Si la compilación nocturna falla, pregunte a Rocío antes de relanzarla.",
        [("PERSON", "Rocío")],
    ),
]
