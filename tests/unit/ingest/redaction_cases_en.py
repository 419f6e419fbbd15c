"""Labelled English snippets: (text, [(entity, exact substring)]).

Ids are synthetic but valid (checksums, Luhn, IBAN mod 97). Negatives are technical prose
that must survive redaction, since redacted words can no longer be retrieved.
"""

CASES: list[tuple[str, list[tuple[str, str]]]] = [
    (
        "Contact Jane Doe at jane.doe@example.com for access to the staging cluster.",
        [("PERSON", "Jane Doe"), ("EMAIL_ADDRESS", "jane.doe@example.com")],
    ),
    (
        "For urgent incidents call the on-call engineer at +1 212-555-0143.",
        [("PHONE_NUMBER", "+1 212-555-0143")],
    ),
    (
        "The invoice was paid with card 4111 1111 1111 1111, expiring next March.",
        [("CREDIT_CARD", "4111 1111 1111 1111")],
    ),
    (
        "Please wire the deposit to IBAN GB82 WEST 1234 5698 7654 32 before Friday.",
        [("IBAN_CODE", "GB82 WEST 1234 5698 7654 32")],
    ),
    (
        "Michael Chen approved the change request; Priya Natarajan reviewed the rollback plan.",
        [("PERSON", "Michael Chen"), ("PERSON", "Priya Natarajan")],
    ),
    (
        "The database listens on 10.0.4.17 and the replica on 10.0.4.18.",
        [("IP_ADDRESS", "10.0.4.17"), ("IP_ADDRESS", "10.0.4.18")],
    ),
    ("Employee record: SSN 536-22-8175, start date 2023-04-01.", [("US_SSN", "536-22-8175")]),
    (
        "Send the signed form to hr@acme-corp.co.uk or fax it to (415) 555-0199.",
        [("EMAIL_ADDRESS", "hr@acme-corp.co.uk"), ("PHONE_NUMBER", "(415) 555-0199")],
    ),
    (
        "Dr. Sarah Johnson will present the quarterly results in Boston.",
        [("PERSON", "Sarah Johnson")],
    ),
    (
        "Refunds go to DE89 3704 0044 0532 0130 00 within ten working days.",
        [("IBAN_CODE", "DE89 3704 0044 0532 0130 00")],
    ),
    (
        "Customer Robert Miller says his Mastercard 5555 5555 5555 4444 was charged twice.",
        [("PERSON", "Robert Miller"), ("CREDIT_CARD", "5555 5555 5555 4444")],
    ),
    (
        "Questions about the API? Write to support@example.org and mention ticket 48213.",
        [("EMAIL_ADDRESS", "support@example.org")],
    ),
    # Negatives: technical prose that must survive redaction intact.
    ("Install the package with pip, then run the migrations with Alembic and restart Uvicorn.", []),
    ("The FastAPI router validates the JSON body with Pydantic before calling the service.", []),
    ("Set MAX_WORKERS to 8 and TIMEOUT to 30 seconds in the YAML configuration file.", []),
    ("Our offices in London, Berlin and Toronto close at 6 pm on public holidays.", []),
    ("Version 2.4.1 fixes a memory leak in the HNSW index when vectors are deleted.", []),
    ("The quarterly report shows revenue grew 12 percent compared with last year.", []),
    ("Use Kubernetes secrets rather than environment variables for database passwords.", []),
    ("Call get_user(id) and check the Status field; Retry on HTTP 503 with backoff.", []),
    (
        "As Ada Lovelace noted, the engine might compose elaborate pieces of music.",
        [("PERSON", "Ada Lovelace")],
    ),
    (
        "Meeting notes: Tom Baker and Lisa Wong agreed to migrate the cluster to Qdrant.",
        [("PERSON", "Tom Baker"), ("PERSON", "Lisa Wong")],
    ),
    ("Troubleshooting: if Celery workers stall, check Redis memory and restart Flower.", []),
    (
        "Signed off by Carlos Mendez, release manager, on behalf of the Platform team.",
        [("PERSON", "Carlos Mendez")],
    ),
    (
        "Ping the router at 2001:db8::7334 from the bastion host before opening a ticket.",
        [("IP_ADDRESS", "2001:db8::7334")],
    ),
    ("If the nightly build fails, ask Priya before re-running it.", [("PERSON", "Priya")]),
    (
        "Please reach Emily Clarke on +44 20 7946 0958 about the contract renewal.",
        [("PERSON", "Emily Clarke"), ("PHONE_NUMBER", "+44 20 7946 0958")],
    ),
    (
        "The refund goes back to the Visa card 4012 8888 8888 1881 within five days.",
        [("CREDIT_CARD", "4012 8888 8888 1881")],
    ),
    (
        "Our Spanish contractor Lucia Romero sent her NIE X8513358T for the payroll file.",
        [("PERSON", "Lucia Romero"), ("ES_NIE", "X8513358T")],
    ),
    (
        "Forward the payslips to payroll@northwind-traders.com before the 25th.",
        [("EMAIL_ADDRESS", "payroll@northwind-traders.com")],
    ),
    (
        "James O'Connor and Hannah Schmidt will run the disaster-recovery drill on Monday.",
        [("PERSON", "James O'Connor"), ("PERSON", "Hannah Schmidt")],
    ),
    (
        "Transfer the deposit to NL91 ABNA 0417 1643 00 and quote the booking reference.",
        [("IBAN_CODE", "NL91 ABNA 0417 1643 00")],
    ),
    (
        "The customer's mobile is (212) 555-0187; call after 5 pm Eastern.",
        [("PHONE_NUMBER", "(212) 555-0187")],
    ),
    (
        "Access logs show repeated logins from 203.0.113.42 overnight.",
        [("IP_ADDRESS", "203.0.113.42")],
    ),
    (
        "Approved by Rachel Green, finance director, on 3 March.",
        [("PERSON", "Rachel Green")],
    ),
    (
        "For the Madrid office lease, the landlord's DNI is 28999723N.",
        [("ES_NIF", "28999723N")],
    ),
    (
        "Amex 3782 822463 10005 was declined; ask the guest for another card.",
        [("CREDIT_CARD", "3782 822463 10005")],
    ),
    (
        "Send a copy to legal@contoso.com and to the account manager, David Kim.",
        [("EMAIL_ADDRESS", "legal@contoso.com"), ("PERSON", "David Kim")],
    ),
    (
        "Employee SSN 432-17-8856 must be masked in every export.",
        [("US_SSN", "432-17-8856")],
    ),
    (
        "Our Moscow partner's SNILS 478-878-384 90 is needed for the visa invitation.",
        [("RU_SNILS", "478-878-384 90")],
    ),
    (
        "Patient Margaret Thompson was discharged on Tuesday afternoon.",
        [("PERSON", "Margaret Thompson")],
    ),
    (
        "Urgent: phone Mr. Daniel Wright at 020 7946 0321 about the outage.",
        [("PERSON", "Daniel Wright"), ("PHONE_NUMBER", "020 7946 0321")],
    ),
    ("The release train ships every second Thursday from the main branch.", []),
    ("Paris, Madrid and Moscow are the three regions with the lowest latency.", []),
    ("Run pytest with the -x flag to stop at the first failure.", []),
    ("Order 2024-00817 ships on 15 March 2024 from the central warehouse.", []),
    ("The Premium plan includes 50 GB of storage and daily backups.", []),
    ("Restart the container and check the logs in /var/log/ragops.", []),
    ("Port 8080 is taken; change PORT in the environment file.", []),
    ("The model answers in under 200 milliseconds with caching enabled.", []),
    ("Grafana dashboards show CPU, memory and queue depth per worker.", []),
    ("The British Library holds manuscripts from the fifteenth century.", []),
    ("Use the Terraform module to create the VPC, subnets and the NAT gateway.", []),
]
