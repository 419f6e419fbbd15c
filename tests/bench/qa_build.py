"""Generates the multilingual retrieval QA set in `tests/bench/data/` (run once; the
JSONL files are committed and `tests/bench/qa.py` loads them).

Documents in English, Spanish and Russian about fictional entities (so no model has seen
the facts), three topics per language that are not translations of each other. Every
question names one entity and asks for one fact stated in exactly one paragraph of one
document; a hit is relevant when it comes from that document and contains the answer.

    python tests/bench/qa_build.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA = Path(__file__).parent / "data"
PER_TOPIC = 12

# Each topic: (name pattern, intro, [(heading, fact sentence, question, answer key)], values)
TOPICS: dict[str, list[dict]] = {
    "en": [
        {
            "topic": "lighthouses",
            "name": "{n} Light",
            "title": "The {name}",
            "intro": "The {name} is a coastal lighthouse that guided fishing fleets and "
            "cargo ships along a rocky stretch of shore for generations. Its lamp and "
            "tower are now cared for by a local heritage trust.",
            "facts": [
                (
                    "History",
                    "The {name} was first lit in {year}, after a winter storm wrecked "
                    "three trading vessels on the reef below it.",
                    "When did the {name} start operating?",
                    "year",
                ),
                (
                    "The tower",
                    "Built of granite blocks, the tower of the {name} stands "
                    "{height} metres tall and has {steps} steps to the lantern room.",
                    "How high is the {name} tower?",
                    "height",
                ),
                (
                    "Keepers",
                    "The last resident keeper of the {name} was {person}, who "
                    "retired when the light was automated.",
                    "Who was the final keeper living at the {name}?",
                    "person",
                ),
            ],
        },
        {
            "topic": "companies",
            "name": "{n} Systems",
            "title": "{name}",
            "intro": "{name} is a mid-sized technology firm with customers in logistics, "
            "healthcare and public administration.",
            "facts": [
                (
                    "Headquarters",
                    "{name} has its headquarters in {city}, where most of its "
                    "engineers work in a converted textile mill.",
                    "In which city is {name} based?",
                    "city",
                ),
                (
                    "Leadership",
                    "Since the last board reshuffle, {name} has been led by chief "
                    "executive {person}.",
                    "Who runs {name}?",
                    "person",
                ),
                (
                    "Products",
                    "{name} became widely known for {product}, a tool that "
                    "schedules deliveries for warehouse fleets.",
                    "What product made {name} famous?",
                    "product",
                ),
            ],
        },
        {
            "topic": "ships",
            "name": "{n}",
            "title": "The schooner {name}",
            "intro": "The {name} was a two-masted schooner that worked the northern coastal "
            "trade routes. Models of her hull still hang in harbour museums.",
            "facts": [
                (
                    "Construction",
                    "The {name} was launched from the {shipyard} shipyard, "
                    "whose carpenters used oak from nearby estates.",
                    "Which shipyard built the {name}?",
                    "shipyard",
                ),
                (
                    "Trade",
                    "For most of her career the {name} carried {cargo} between small "
                    "harbours on the coast.",
                    "What cargo did the {name} usually transport?",
                    "cargo",
                ),
                (
                    "Retirement",
                    "The {name} was finally decommissioned in {year} and her "
                    "bell was given to a local church.",
                    "In what year was the {name} taken out of service?",
                    "year",
                ),
            ],
        },
    ],
    "es": [
        {
            "topic": "ríos",
            "name": "{n}",
            "title": "El río {name}",
            "intro": "El río {name} atraviesa valles agrícolas y pequeños pueblos de "
            "montaña. Sus riberas son refugio de aves migratorias durante el otoño.",
            "facts": [
                (
                    "Nacimiento",
                    "El río {name} nace en la {sierra}, a más de mil metros de "
                    "altitud, entre bosques de pinos.",
                    "¿Dónde tiene su origen el río {name}?",
                    "sierra",
                ),
                (
                    "Recorrido",
                    "Con una longitud de {km} kilómetros, el {name} recibe las "
                    "aguas de varios arroyos menores.",
                    "¿Cuánto mide el río {name}?",
                    "km",
                ),
                (
                    "Desembocadura",
                    "Finalmente el {name} desemboca en {mouth}, formando un "
                    "pequeño delta de arena.",
                    "¿Dónde termina el curso del río {name}?",
                    "mouth",
                ),
            ],
        },
        {
            "topic": "fiestas",
            "name": "{n}",
            "title": "La Fiesta de {name}",
            "intro": "La Fiesta de {name} reúne cada año a vecinos y visitantes con música, "
            "procesiones y comidas populares en la plaza mayor.",
            "facts": [
                (
                    "Fecha",
                    "La Fiesta de {name} se celebra cada año en {month}, coincidiendo "
                    "con el final de la cosecha.",
                    "¿En qué mes tiene lugar la Fiesta de {name}?",
                    "month",
                ),
                (
                    "Gastronomía",
                    "El plato típico de la Fiesta de {name} es {dish}, que se "
                    "reparte gratis a los asistentes.",
                    "¿Qué comida tradicional se sirve en la Fiesta de {name}?",
                    "dish",
                ),
                (
                    "Origen",
                    "Según los archivos municipales, la Fiesta de {name} se remonta al año {year}.",
                    "¿Desde cuándo se celebra la Fiesta de {name}?",
                    "year",
                ),
            ],
        },
        {
            "topic": "quesos",
            "name": "{n}",
            "title": "El queso {name}",
            "intro": "El queso {name} es una elaboración artesanal protegida por una "
            "denominación de origen y vendida en mercados locales.",
            "facts": [
                (
                    "Leche",
                    "El queso {name} se elabora con leche cruda de {animal}, ordeñada "
                    "dos veces al día.",
                    "¿Con qué leche se hace el queso {name}?",
                    "animal",
                ),
                (
                    "Curación",
                    "Cada pieza de {name} madura durante {months} meses en cuevas naturales.",
                    "¿Cuánto tiempo se cura el queso {name}?",
                    "months",
                ),
                (
                    "Región",
                    "La producción del queso {name} se concentra en la comarca de {region}.",
                    "¿En qué zona se produce el queso {name}?",
                    "region",
                ),
            ],
        },
    ],
    "ru": [
        {
            "topic": "учёные",
            "name": "{first} {n}",
            "title": "{name}",
            "intro": "{name} — исследователь, чьи работы до сих пор изучают студенты "
            "технических университетов.",
            "facts": [
                (
                    "Детство",
                    "{name} родился в городе {city} в семье учителя.",
                    "В каком городе родился {name}?",
                    "city",
                ),
                (
                    "Открытие",
                    "Главным достижением учёного считается {discovery}; эту работу "
                    "{name} завершил после десяти лет опытов.",
                    "Что открыл {name}?",
                    "discovery",
                ),
                (
                    "Признание",
                    "Государственную премию {name} получил в {year} году.",
                    "Когда {name} был удостоен премии?",
                    "year",
                ),
            ],
        },
        {
            "topic": "заводы",
            "name": "«{n}»",
            "title": "Завод {name}",
            "intro": "Завод {name} — одно из старейших предприятий региона; на нём работают "
            "несколько тысяч человек.",
            "facts": [
                (
                    "История",
                    "Завод {name} был основан в {year} году на берегу реки.",
                    "В каком году появился завод {name}?",
                    "year",
                ),
                (
                    "Продукция",
                    "Сегодня завод {name} выпускает {product} для внутреннего рынка и на экспорт.",
                    "Что производит завод {name}?",
                    "product",
                ),
                (
                    "Руководство",
                    "Генеральным директором завода {name} назначен {person}.",
                    "Кто руководит заводом {name}?",
                    "person",
                ),
            ],
        },
        {
            "topic": "озёра",
            "name": "{n}",
            "title": "Озеро {name}",
            "intro": "Озеро {name} окружено хвойным лесом; летом сюда приезжают туристы и рыбаки.",
            "facts": [
                (
                    "Глубина",
                    "Наибольшая глубина озера {name} достигает {depth} метров.",
                    "Какова максимальная глубина озера {name}?",
                    "depth",
                ),
                (
                    "Рыба",
                    "В озере {name} водится {fish}, поэтому здесь любят рыбачить.",
                    "Какая рыба живёт в озере {name}?",
                    "fish",
                ),
                (
                    "Площадь",
                    "Площадь зеркала озера {name} составляет {area} квадратных километров.",
                    "Насколько велико озеро {name} по площади?",
                    "area",
                ),
            ],
        },
    ],
}

SYLLABLES = {
    "en": "kar shol brin dale mor wick thorn ash fen gar lun vey ros bel tam cor".split(),
    "es": "al ma rén ta gor vi lla can ber nal sol mu re to quin da".split(),
    "ru": "вес нин кор бел ров тал ми ша гор ска ло дар вол ко лин яр".split(),
}
VALUES = {
    "person": {
        "en": [
            "Edith Calloway",
            "Thomas Redfern",
            "Margaret Hale",
            "Owen Pritchard",
            "Ruth Ambrose",
            "Samuel Tully",
            "Clara Whitcombe",
            "Henry Vosper",
            "Agnes Merriman",
            "Walter Booth",
            "Lydia Fenwick",
            "Arthur Kemble",
        ],
        "ru": [
            "Олег Смирнов",
            "Ирина Ковалёва",
            "Виктор Лебедев",
            "Наталья Орлова",
            "Павел Жуков",
            "Елена Соколова",
            "Андрей Морозов",
            "Татьяна Белова",
            "Сергей Голубев",
            "Мария Фёдорова",
            "Григорий Панов",
            "Анна Тихонова",
        ],
    },
    "first": {
        "ru": [
            "Аркадий",
            "Борис",
            "Дмитрий",
            "Евгений",
            "Фёдор",
            "Илья",
            "Константин",
            "Леонид",
            "Михаил",
            "Николай",
            "Пётр",
            "Степан",
        ]
    },
    "city": {
        "en": [
            "Leeds",
            "Aberdeen",
            "Norwich",
            "Plymouth",
            "Cardiff",
            "Belfast",
            "Dundee",
            "Exeter",
            "Bristol",
            "Sheffield",
            "Carlisle",
            "Lincoln",
        ],
        "ru": [
            "Тобольске",
            "Вологде",
            "Костроме",
            "Калуге",
            "Томске",
            "Иркутске",
            "Архангельске",
            "Пскове",
            "Рязани",
            "Самаре",
            "Пензе",
            "Твери",
        ],
    },
    "product": {
        "en": [
            "RouteLoom",
            "DockPilot",
            "CargoMesh",
            "FleetSprout",
            "PalletWise",
            "LoadLark",
            "HaulGrid",
            "CrateSense",
            "ShipRhythm",
            "BayPlanner",
            "ForkLogic",
            "TrailBinder",
        ],
        "ru": [
            "тракторы",
            "станки",
            "трубы",
            "вагоны",
            "холодильники",
            "моторы",
            "насосы",
            "кабели",
            "подшипники",
            "турбины",
            "краны",
            "стекло",
        ],
    },
    "shipyard": {
        "en": [
            "Hollins",
            "Barrowmere",
            "Sandcove",
            "Gullhaven",
            "Redquay",
            "Northfleet",
            "Saltmarsh",
            "Eastbrook",
            "Kittering",
            "Fallowby",
            "Westholme",
            "Ravenscar",
        ]
    },
    "cargo": {
        "en": [
            "slate roofing tiles",
            "salted herring",
            "coal",
            "timber",
            "wool bales",
            "barley",
            "lime",
            "bricks",
            "cider barrels",
            "potatoes",
            "iron ore",
            "china clay",
        ]
    },
    "sierra": {
        "es": [
            "sierra de Gredilla",
            "sierra de Moncayuelo",
            "sierra Albarda",
            "sierra de Urbel",
            "sierra Cebollera Alta",
            "sierra de Pinaza",
            "sierra de Tormo",
            "sierra Negrilla",
            "sierra de Aranza",
            "sierra del Cuervo",
            "sierra de Valdelosa",
            "sierra Carrasca",
        ]
    },
    "mouth": {
        "es": [
            "el embalse de Valcorba",
            "el río Duero",
            "la laguna de Salinas",
            "el mar Cantábrico",
            "el río Ebro",
            "la bahía de Ormaza",
            "el río Tajo",
            "la ría de Boiro",
            "el río Guadiana",
            "el lago de Sanabria",
            "el río Jalón",
            "la albufera de Torrent",
        ]
    },
    "month": {
        "es": [
            "enero",
            "febrero",
            "marzo",
            "abril",
            "mayo",
            "junio",
            "julio",
            "agosto",
            "septiembre",
            "octubre",
            "noviembre",
            "diciembre",
        ]
    },
    "dish": {
        "es": [
            "migas con uvas",
            "cocido montañés",
            "paella de conejo",
            "gachas dulces",
            "caldereta de cordero",
            "pulpo a la gallega",
            "sopas de ajo",
            "empanada de bonito",
            "fabada",
            "pisto manchego",
            "calçots asados",
            "torrijas",
        ]
    },
    "animal": {"es": ["oveja", "cabra", "vaca", "búfala"]},
    "region": {
        "es": [
            "Tierra de Campos",
            "la Alcarria",
            "los Montes de Toledo",
            "la Sidra",
            "el Bierzo",
            "las Cinco Villas",
            "la Ribagorza",
            "la Vera",
            "el Maestrazgo",
            "la Serena",
            "los Oscos",
            "la Garrotxa",
        ]
    },
    "discovery": {
        "ru": [
            "закон теплового расширения кристаллов",
            "новый сплав меди",
            "способ очистки воды",
            "эффект магнитной памяти",
            "метод окраски тканей",
            "теорию вечной мерзлоты",
            "вакцину от ящура",
            "прибор для измерения влажности",
            "формулу прочности мостов",
            "состав жаропрочной керамики",
            "механизм фотосинтеза водорослей",
            "звезду переменной яркости",
        ]
    },
    "fish": {
        "ru": [
            "щука",
            "окунь",
            "лещ",
            "налим",
            "сиг",
            "хариус",
            "судак",
            "карп",
            "форель",
            "плотва",
            "ряпушка",
            "таймень",
        ]
    },
}


def _name(rng: random.Random, language: str, used: set[str]) -> str:
    while True:
        parts = rng.sample(SYLLABLES[language], 2)
        name = "".join(parts).capitalize()
        if name not in used:
            used.add(name)
            return name


def build() -> tuple[list[dict], list[dict]]:
    rng = random.Random(20261123)
    docs: list[dict] = []
    questions: list[dict] = []
    for language, topics in TOPICS.items():
        used: set[str] = set()
        for t_index, topic in enumerate(topics):
            for i in range(PER_TOPIC):
                values = {
                    "n": _name(rng, language, used),
                    "year": str(1780 + rng.randrange(220)),
                    "height": str(rng.randint(18, 62)),
                    "steps": str(rng.randint(90, 260)),
                    "km": str(rng.randint(40, 390)),
                    "months": str(rng.randint(2, 24)),
                    "depth": str(rng.randint(6, 140)),
                    "area": str(rng.randint(3, 90)),
                }
                for key, per_language in VALUES.items():
                    if language in per_language:
                        pool = per_language[language]
                        values[key] = pool[(i + t_index * 5) % len(pool)]
                values["name"] = topic["name"].format(**values)
                title = topic["title"].format(**values)
                stem = f"{language}-topic{t_index}-{i:02d}"
                ext = ["md", "txt", "html"][i % 3]
                paragraphs = [topic["intro"].format(**values)]
                for heading, fact, question, key in topic["facts"]:
                    paragraphs += ["# " + heading, fact.format(**values)]
                    questions.append(
                        {
                            "id": f"{stem}-{key}",
                            "language": language,
                            "question": question.format(**values),
                            "filename": f"{stem}.{ext}",
                            "answer": values[key],
                        }
                    )
                docs.append(
                    {
                        "filename": f"{stem}.{ext}",
                        "language": language,
                        "topic": topic["topic"],
                        "title": title,
                        "paragraphs": paragraphs,
                        "metadata": {
                            "lang": language,
                            "topic": topic["topic"],
                            "year": 2000 + (i * 3 + t_index) % 25,
                            "published": f"20{10 + i:02d}-{1 + t_index * 4:02d}-15",
                        },
                    }
                )
    # A fixed held-out split (40%): weights are tuned on "train" only.
    for q in questions:
        q["split"] = "heldout" if rng.random() < 0.4 else "train"
    return docs, questions


def main() -> None:
    docs, questions = build()
    DATA.mkdir(parents=True, exist_ok=True)
    for name, rows in (("docs.jsonl", docs), ("qa.jsonl", questions)):
        with open(DATA / name, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(docs)} documents, {len(questions)} questions written to {DATA}")


if __name__ == "__main__":
    main()
