"""Generate the labelled privacy corpus: `python tests/privacy/make_corpus.py` rewrites corpus/corpus.jsonl.

Labels come from what the generator put in each line, never from running the detectors. Half the lines
carry personal data or secrets (every kind), half are tricky negatives. The output is frozen in git.
Each line: {"id", "group": "positive"|"negative", "template", "text", "labels": [[kind, substring], ...]}.
"""

from __future__ import annotations

import base64
import json
import random
import string
import sys
from pathlib import Path
from urllib.parse import quote

OUT = Path(__file__).parent / "corpus" / "corpus.jsonl"
SEED = 20261127
PER_GROUP = 600

FIRST = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "niaj",
    "olivia",
    "peggy",
    "rupert",
    "sybil",
    "trent",
    "victor",
    "walter",
    "zoe",
    "amélie",
    "jürgen",
]
LAST = ["smith", "jones", "martin", "dubois", "müller", "garcia", "rossi", "nguyen", "kowalski", "okafor"]
DOMAINS = [
    "example.com",
    "example.org",
    "mail.example.net",
    "corp.example.co.uk",
    "example.fr",
    "acme.io",
    "users.noreply.example.com",
    "example.de",
]
HOSTS = ["api-7f9c", "web-01", "ip-10-2-3-4.ec2.internal", "db-primary", "auth.internal", "edge-eu-1"]
PATHS = ["/api/v1/users", "/login", "/api/v2/orders", "/healthz", "/admin/settings", "/oauth/token"]
UA = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/2.0",
    "kube-probe/1.30",
]
B64 = string.ascii_letters + string.digits + "+/"
B64URL = string.ascii_letters + string.digits + "-_"
ALNUM = string.ascii_letters + string.digits
BASE32 = string.ascii_uppercase + "234567"
IBAN_FORMATS = {
    "DE": (22, "n"),
    "GB": (22, "GB"),
    "FR": (27, "n"),
    "NL": (18, "NL"),
    "ES": (24, "n"),
    "IT": (27, "IT"),
    "BE": (16, "n"),
    "CH": (21, "n"),
    "PL": (28, "n"),
    "SE": (24, "n"),
}
NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


class Gen:
    """Value makers that know what they made."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def pick(self, items):
        return self.rng.choice(items)

    def chars(self, alphabet: str, n: int) -> str:
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def digits(self, n: int) -> str:
        return self.chars(string.digits, n)

    def hex(self, n: int) -> str:
        return self.chars("0123456789abcdef", n)

    def person(self) -> tuple[str, str]:
        return self.pick(FIRST), self.pick(LAST)

    # --- personal data -------------------------------------------------------------------------
    def email(self) -> str:
        first, last = self.person()
        local = self.pick(
            [
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}+{self.pick(['ci', 'news'])}",
                f"{first}_{last}{self.rng.randint(1, 99)}",
                first.upper(),
            ]
        )
        local = local.encode("ascii", "ignore").decode() or "x"
        return f"{local}@{self.pick(DOMAINS)}"

    def card(self) -> str:
        prefix, length = self.pick(
            [
                ("4", 16),
                ("4", 16),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("65", 16),
                ("3530", 16),
                ("4", 19),
            ]
        )
        body = prefix + self.digits(length - len(prefix) - 1)
        number = body + luhn_digit(body)
        sep = self.pick(["", " ", "-"])
        if length == 15:
            return sep.join([number[:4], number[4:10], number[10:]])
        return sep.join(number[i : i + 4] for i in range(0, length, 4))

    def iban(self) -> str:
        country = self.pick(sorted(IBAN_FORMATS))
        length, bank = IBAN_FORMATS[country]
        prefix = {
            "GB": self.pick(["NWBK", "WEST", "BARC"]),
            "NL": self.pick(["ABNA", "INGB", "RABO"]),
            "IT": self.pick(["X", "A"]),
        }.get(bank, "")
        bban = prefix + self.digits(length - 4 - len(prefix))
        check = 98 - int(alnum_number(bban + country + "00")) % 97
        compact = f"{country}{check:02d}{bban}"
        if self.rng.random() < 0.5:
            return compact
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))

    def ssn(self) -> str:
        area = self.rng.choice([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.rng.randint(1, 99):02d}-{self.rng.randint(1, 9999):04d}"

    def nino(self) -> str:
        while True:
            prefix = self.pick(NINO_FIRST) + self.pick(NINO_SECOND)
            if prefix not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
                break
        d = self.digits(6)
        suffix = self.pick("ABCD")
        if self.rng.random() < 0.5:
            return f"{prefix}{d}{suffix}"
        return f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {suffix}"

    def insee(self) -> str:
        body = (
            self.pick("12")
            + self.digits(2)
            + f"{self.rng.randint(1, 12):02d}"
            + f"{self.rng.randint(1, 95):02d}"
            + f"{self.rng.randint(1, 990):03d}"
            + f"{self.rng.randint(1, 999):03d}"
        )
        key = 97 - int(body) % 97
        full = f"{body}{key:02d}"
        if self.rng.random() < 0.5:
            return full
        return " ".join([full[0], full[1:3], full[3:5], full[5:7], full[7:10], full[10:13], full[13:]])

    def phone(self) -> str:
        d = self.digits
        return self.pick(
            [
                f"+1 415-555-{d(4)}",
                f"+1{self.pick(['415', '212', '646'])}555{d(4)}",
                f"+1 (312) 555-{d(4)}",
                f"+44 20 7946 {d(4)}",
                f"+44 7700 900{d(3)}",
                f"+33 6 {d(2)} {d(2)} {d(2)} {d(2)}",
                f"+49 30 {d(8)}",
                f"+34 612 {d(3)} {d(3)}",
                f"+81 3-{d(4)}-{d(4)}",
                f"+61 2 {d(4)} {d(4)}",
                f"(415) 555-{d(4)}",
                f"212-555-{d(4)}",
                f"646.555.{d(4)}",
                f"020 7946 {d(4)}",
                f"07700 900{d(3)}",
                f"06 {d(2)} {d(2)} {d(2)} {d(2)}",
                f"0161 496 {d(4)}",
            ]
        )

    def ipv4(self) -> str:
        return self.pick(
            [
                f"10.{self.rng.randint(0, 255)}.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
                f"192.168.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
                f"203.0.113.{self.rng.randint(1, 254)}",
                f"198.51.100.{self.rng.randint(1, 254)}",
                f"{self.rng.randint(11, 223)}.{self.rng.randint(0, 255)}."
                f"{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}",
            ]
        )

    def ipv6(self) -> str:
        return self.pick(
            [
                f"2001:db8::{self.hex(4).lstrip('0') or '1'}",
                f"2001:db8:{self.hex(4)}:{self.hex(4)}::{self.rng.randint(1, 99)}",
                f"fe80::{self.hex(4)}:{self.hex(2)}ff:fe{self.hex(2)}:{self.hex(4)}",
                ":".join(["2001", "0db8"] + [self.hex(4) for _ in range(6)]),
                "::1",
                f"2a00:1450:4001:{self.rng.randint(800, 899)}::200e",
            ]
        )

    def ip(self) -> str:
        return self.ipv4() if self.rng.random() < 0.7 else self.ipv6()

    # --- secrets ---------------------------------------------------------------------------------
    def jwt(self) -> str:
        header = {"alg": self.pick(["HS256", "RS256", "ES256", "EdDSA"]), "typ": "JWT"}
        if self.rng.random() < 0.4:
            header["kid"] = self.hex(8)
        payload = {
            "sub": str(self.rng.randint(1, 10**6)),
            "iat": 1764000000 + self.rng.randint(0, 10**6),
            "scope": self.pick(["read", "read write", "admin"]),
        }
        sig = b64url(self.rng.randbytes(self.pick([32, 64, 256])))
        return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}.{sig}"

    def aws_key(self) -> str:
        return self.pick(["AKIA", "ASIA"]) + self.chars(BASE32, 16)

    def aws_secret(self) -> str:
        return self.chars(B64, 40)

    def gcp_key(self) -> str:
        return "AIza" + self.chars(ALNUM + "-_", 35)

    def azure_account_key(self) -> str:
        return base64.b64encode(self.rng.randbytes(64)).decode()

    def azure_sas_sig(self) -> str:
        raw = base64.b64encode(self.rng.randbytes(32)).decode()
        return raw.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")

    def github_token(self) -> str:
        if self.rng.random() < 0.25:
            return f"github_pat_{self.chars(ALNUM, 22)}_{self.chars(ALNUM, 59)}"
        return f"{self.pick(['ghp', 'gho', 'ghs', 'ghu'])}_{self.chars(ALNUM, 36)}"

    def gitlab_token(self) -> str:
        return "glpat-" + self.chars(ALNUM + "-_", 20)

    def slack_token(self) -> str:
        return f"xox{self.pick('bpas')}-{self.digits(11)}-{self.digits(12)}-{self.chars(ALNUM, 24)}"

    def opaque_token(self) -> str:
        while True:
            token = self.chars(ALNUM + "-._", self.rng.randint(24, 48))
            if any(c.isdigit() for c in token) and token[0].isalnum() and token[-1].isalnum():
                return token

    def basic(self) -> tuple[str, str]:
        user = self.pick(["admin", "svc-backup", "deploy", "grafana", "alice"])
        return user, base64.b64encode(f"{user}:{self.password()}".encode()).decode()

    def password(self) -> str:
        return self.pick(
            [
                f"Hunter{self.digits(2)}!",
                f"s3cr3t-{self.chars(ALNUM, 6)}",
                self.chars(ALNUM, 16),
                f"Winter{2020 + self.rng.randint(0, 6)}#",
                f"pa55w0rd{self.digits(3)}",
            ]
        )

    def random_secret(self) -> str:
        while True:
            value = self.chars(ALNUM, self.rng.randint(24, 44))
            if (
                any(c.isdigit() for c in value)
                and any(c.islower() for c in value)
                and any(c.isupper() for c in value)
            ):
                return value

    def pem(self, escaped: bool) -> str:
        label = self.pick(["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"])
        body = [self.chars(B64, 64) for _ in range(self.rng.randint(3, 6))] + [self.chars(B64, 20) + "=="]
        nl = "\\n" if escaped else "\n"
        return f"-----BEGIN {label}-----{nl}{nl.join(body)}{nl}-----END {label}-----"

    # --- harmless look-alikes --------------------------------------------------------------------
    def uuid(self) -> str:
        h = self.hex(32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def non_luhn_16(self) -> str:
        while True:
            number = str(self.rng.randint(10**15, 10**16 - 1))
            if not luhn_ok(number):
                return number

    def timestamp(self) -> str:
        return (
            f"2026-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}T{self.rng.randint(0, 23):02d}:"
            f"{self.rng.randint(0, 59):02d}:{self.rng.randint(0, 59):02d}.{self.digits(6)}Z"
        )

    def version(self) -> str:
        return self.pick(
            [
                f"{self.rng.randint(0, 9)}.{self.rng.randint(0, 30)}.{self.rng.randint(0, 99)}",
                f"v{self.rng.randint(1, 3)}.{self.rng.randint(0, 40)}.{self.rng.randint(0, 9)}",
                f"1.{self.rng.randint(20, 31)}.{self.rng.randint(0, 9)}-rc.{self.rng.randint(1, 4)}",
            ]
        )


def luhn_digit(body: str) -> str:
    """The check digit that makes body + digit pass Luhn."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise AssertionError


def luhn_ok(number: str) -> bool:
    total = 0
    for i, c in enumerate(reversed(number)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def alnum_number(text: str) -> str:
    return "".join(str(int(c, 36)) for c in text)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def in_json(value: str) -> str:
    """How value appears inside a JSON string in a dumped document."""
    return json.dumps(value, ensure_ascii=False)[1:-1]


# ------------------------------------------------------------------------------------------------
# Positive templates: each returns (text, labels).
# ------------------------------------------------------------------------------------------------


def nginx_access(g: Gen):
    ip = g.ipv4()
    path = g.pick(["/api/v1/users", "/checkout", "/static/app.9f8c1e.js", "/login"])
    return (
        f'{ip} - - [27/Nov/2026:14:{g.rng.randint(10, 59)}:07 +0000] "GET {path} HTTP/1.1" '
        f'{g.pick(["200", "302", "404"])} {g.rng.randint(200, 90000)} "-" "{g.pick(UA)}" rt=0.{g.digits(3)}'
    ), [("ip", ip)]


def nginx_query_secret(g: Gen):
    ip, email = g.ipv4(), g.email()
    token = g.opaque_token()
    key = g.pick(["token", "access_token", "api_key"])
    return (
        f'{ip} - - [27/Nov/2026:09:01:44 +0000] "GET /reset?email={email}&{key}={token} HTTP/2.0" 200 512',
        [("ip", ip), ("email", email), ("secret", token)],
    )


def sshd_failed(g: Gen):
    ip = g.ip()
    return (
        f"Nov 27 14:02:{g.rng.randint(10, 59)} {g.pick(HOSTS)} sshd[{g.rng.randint(1000, 99999)}]: "
        "Failed password for "
        f"invalid user {g.pick(FIRST)} from {ip} port {g.rng.randint(1024, 65535)} ssh2"
    ), [("ip", ip)]


def app_login_email(g: Gen):
    email = g.email()
    return (
        f"{g.timestamp()} INFO  [auth] login ok user={email} session_ms={g.rng.randint(3, 900)} "
        f"trace={g.hex(32)}"
    ), [("email", email)]


def app_signup(g: Gen):
    email, phone = g.email(), g.phone()
    return (
        f'{g.timestamp()} level=info msg="signup completed" email={email} phone="{phone}" '
        f"plan=pro request_id={g.uuid()}"
    ), [("email", email), ("phone", phone)]


def payment_card(g: Gen):
    card = g.card()
    return (
        f"{g.timestamp()} WARN payment-svc charge declined card={card} amount=49.99 currency=EUR "
        f"order=ORD-2026-{g.digits(6)}"
    ), [("card", card)]


def payment_card_prose(g: Gen):
    card = g.card()
    return f"Customer read card number {card} over the phone; ticket #{g.digits(5)} escalated", [
        ("card", card)
    ]


def iban_transfer(g: Gen):
    iban = g.iban()
    return (
        f"{g.timestamp()} sepa transfer queued iban={iban} amount={g.rng.randint(1, 9999)}.00 ref={g.uuid()}",
        [("iban", iban)],
    )


def iban_prose(g: Gen):
    iban, email = g.iban(), g.email()
    return f"Refund to {iban} requested by {email} (case {g.digits(6)})", [("iban", iban), ("email", email)]


def ssn_form(g: Gen):
    ssn = g.ssn()
    return (
        f"{g.timestamp()} DEBUG kyc.verify applicant ssn={ssn} "
        f"dob=1984-{g.rng.randint(1, 12):02d}-11 result=pass",
        [("ssn", ssn)],
    )


def ssn_prose(g: Gen):
    ssn = g.ssn()
    return f"W-2 upload parsed: employee SSN {ssn}, employer EIN 12-{g.digits(7)}", [("ssn", ssn)]


def nino_line(g: Gen):
    nino = g.nino()
    return f'{g.timestamp()} payroll-uk employee nino="{nino}" tax_code=1257L period=2026-11', [
        ("nino", nino)
    ]


def insee_line(g: Gen):
    insee = g.insee()
    return f"{g.timestamp()} mutuelle-fr adhérent NIR {insee} rattaché au contrat C-{g.digits(8)}", [
        ("insee", insee)
    ]


def phone_support(g: Gen):
    phone = g.phone()
    return f"{g.timestamp()} support callback scheduled for {phone} at 15:30 CET (agent {g.pick(FIRST)})", [
        ("phone", phone)
    ]


def phone_sms(g: Gen):
    phone = g.phone()
    return f"sms-gateway: OTP delivered to {phone} provider=twilio status=queued sid=SM{g.hex(32)}", [
        ("phone", phone)
    ]


def jwt_header(g: Gen):
    token = g.jwt()
    return f"{g.timestamp()} DEBUG http request headers: Authorization: Bearer {token}", [("jwt", token)]


def jwt_query(g: Gen):
    token = g.jwt()
    return f'GET /ws?id_token={token} HTTP/1.1" 101', [("jwt", token)]


def aws_env(g: Gen):
    key, secret = g.aws_key(), g.aws_secret()
    return f"env: AWS_ACCESS_KEY_ID={key} AWS_SECRET_ACCESS_KEY={secret} AWS_REGION=eu-west-1", [
        ("aws_key", key),
        ("aws_secret", secret),
    ]


def aws_json(g: Gen):
    key, secret = g.aws_key(), g.aws_secret()
    doc = {"Credentials": {"AccessKeyId": key, "SecretAccessKey": secret, "Expiration": g.timestamp()}}
    return f"sts assume-role response: {json.dumps(doc)}", [("aws_key", key), ("aws_secret", in_json(secret))]


def gcp_key_line(g: Gen):
    key = g.gcp_key()
    return (
        f"maps-client: geocode https://maps.googleapis.com/maps/api/geocode/json?address=Paris&key={key}",
        [("gcp_key", key)],
    )


def gcp_service_account(g: Gen):
    pem = g.pem(escaped=False)
    project = g.pick(["billing-prod", "analytics-42", "ml-train"])
    email = f"deployer@{project}.iam.gserviceaccount.com"
    doc = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": g.hex(40),
        "private_key": pem + "\n",
        "client_email": email,
        "client_id": g.digits(21),
    }
    return f"loaded credentials: {json.dumps(doc)}", [("private_key", in_json(pem)), ("email", email)]


def azure_conn(g: Gen):
    key = g.azure_account_key()
    return (
        f"storage: DefaultEndpointsProtocol=https;AccountName=st{g.hex(8)};AccountKey={key};"
        f"EndpointSuffix=core.windows.net"
    ), [("azure_key", key)]


def azure_sas(g: Gen):
    sig = g.azure_sas_sig()
    return (
        f"GET https://st{g.hex(6)}.blob.core.windows.net/backups/db.bak?sv=2022-11-02&ss=b&srt=o&sp=r"
        f"&se=2026-12-01T00:00:00Z&sig={sig} 200"
    ), [("azure_key", sig)]


def github_line(g: Gen):
    token = g.github_token()
    return f"ci: git clone https://x-access-token:{token}@github.com/acme/app.git", [("github_token", token)]


def github_env(g: Gen):
    token = g.github_token()
    return f"{g.timestamp()} runner env GH_TOKEN={token} GITHUB_RUN_ID={g.digits(10)}", [
        ("github_token", token)
    ]


def gitlab_line(g: Gen):
    token = g.gitlab_token()
    return f'curl --header "PRIVATE-TOKEN: {token}" https://gitlab.example.com/api/v4/projects', [
        ("gitlab_token", token)
    ]


def slack_line(g: Gen):
    token = g.slack_token()
    return f"{g.timestamp()} notifier using slack token {token} for channel #alerts", [("slack_token", token)]


def bearer_opaque(g: Gen):
    token = g.opaque_token()
    return f"{g.timestamp()} upstream call to billing failed 401, sent Authorization: Bearer {token}", [
        ("bearer_token", token)
    ]


def basic_line(g: Gen):
    _, token = g.basic()
    return f"proxy: forwarding with header 'Authorization: Basic {token}' to backend", [("basic_auth", token)]


def url_password(g: Gen):
    password = quote(g.pick([g.password(), g.chars(ALNUM, 12)]), safe="")
    scheme = g.pick(["postgres", "mysql", "redis", "amqp", "mongodb+srv", "https"])
    user = g.pick(["app", "admin", "svc_reporting", ""])
    return f"{g.timestamp()} connecting to {scheme}://{user}:{password}@db.internal:5432/main", [
        ("password", password)
    ]


def query_password(g: Gen):
    password = quote(g.password(), safe="")
    key = g.pick(["password", "pwd", "passwd"])
    return f"POST /legacy/login?username={g.pick(FIRST)}&{key}={password}&remember=1 -> 302", [
        ("password", password)
    ]


def yaml_password(g: Gen):
    password = g.password()
    return f"config dump: db.user: app db.password: {password} db.pool: 10", [("password", password)]


def json_secret_fields(g: Gen):
    secret, password = g.random_secret(), g.password()
    doc = {
        "client_id": f"app-{g.digits(4)}",
        "client_secret": secret,
        "password": password,
        "grant_type": "password",
    }
    return f"oauth request body {json.dumps(doc)}", [("secret", secret), ("password", in_json(password))]


def header_api_key(g: Gen):
    key = g.random_secret()
    return f"{g.timestamp()} > GET /v1/data HTTP/1.1 > Host: api.example.com > X-Api-Key: {key}", [
        ("secret", key)
    ]


def cookie_header(g: Gen):
    value = f"sid={g.chars(ALNUM, 32)}; csrftoken={g.chars(ALNUM, 24)}; theme=dark"
    return f"request headers: Cookie: {value}", [("secret", value)]


def set_cookie(g: Gen):
    value = f"session={g.chars(ALNUM, 40)}; Path=/; HttpOnly; Secure; SameSite=Lax"
    return f"< HTTP/1.1 200 OK < Set-Cookie: {value}", [("secret", value)]


def weak_key_entropy(g: Gen):
    value = g.random_secret()
    key = g.pick(["signing_key", "hmac", "encryption_key", "webhook_key"])
    return f"{g.timestamp()} webhook registered id={g.digits(6)} {key}={value}", [("secret", value)]


def pem_raw(g: Gen):
    pem = g.pem(escaped=True)
    return f"deploy.sh: writing key file: {pem}", [("private_key", pem)]


def k8s_secret_event(g: Gen):
    ip, token = g.ipv4(), g.jwt()
    doc = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "verb": "get",
        "user": {"username": "system:serviceaccount:ci:deployer"},
        "sourceIPs": [ip],
        "objectRef": {"resource": "secrets", "namespace": "prod", "name": "db-creds"},
        "annotations": {"authorization.k8s.io/decision": "allow"},
        "responseObject": {"data": {"token": token}},
    }
    return json.dumps(doc), [("ip", ip), ("jwt", token)]


def trailseal_event(g: Gen):
    """A trailseal event v1 as JSON with personal data in actor, reason and attributes."""
    email, ip, phone, card = g.email(), g.ipv4(), g.phone(), g.card()
    session = f"s-{g.digits(6)}"
    event = {
        "id": g.uuid(),
        "time": g.timestamp(),
        "category": "data_change",
        "action": "user.update",
        "outcome": "success",
        "actor": {"id": email, "type": "user", "ip": ip, "session": session},
        "source": {"component": "accounts-api", "kind": "app", "host": g.pick(HOSTS)},
        "target": {"type": "user", "id": f"u-{g.digits(7)}"},
        "request": {"method": "PATCH", "path": "/api/v1/users/me", "status": 200, "trace_id": g.hex(32)},
        "attributes": {
            "changed": {"phone": phone},
            "note": f"card on file {card} verified",
            "version": g.version(),
        },
    }
    return json.dumps(event, ensure_ascii=False), [
        ("email", email),
        ("ip", ip),
        ("secret", session),
        ("phone", in_json(phone)),
        ("card", card),
    ]


def db_query(g: Gen):
    email, ssn = g.email(), g.ssn()
    return (
        f"{g.timestamp()} pg: duration: {g.rng.randint(1, 900)}.{g.digits(3)} ms "
        "statement: SELECT * FROM customers "
        f"WHERE email = '{email}' OR ssn = '{ssn}' LIMIT 50"
    ), [("email", email), ("ssn", ssn)]


def java_exception(g: Gen):
    email = g.email()
    return (
        f"java.lang.IllegalStateException: duplicate account {email}\n"
        "\tat com.acme.accounts.Service.create(Service.java:"
        f"{g.rng.randint(10, 900)})"
    ), [("email", email)]


def mixed_many(g: Gen):
    email, ip, phone, iban = g.email(), g.ip(), g.phone(), g.iban()
    return (
        f"{g.timestamp()} crm sync contact={email} last_ip={ip} tel=[{phone}] billing_iban=<{iban}> "
        f"lead_score=0.{g.digits(2)}"
    ), [("email", email), ("ip", ip), ("phone", phone), ("iban", iban)]


def slack_webhook_payload(g: Gen):
    email, ip = g.email(), g.ipv6()
    return f"alert: impossible travel for {email}, new login from {ip} (ASN {g.digits(5)})", [
        ("email", email),
        ("ip", ip),
    ]


POSITIVE = [
    nginx_access,
    nginx_query_secret,
    sshd_failed,
    app_login_email,
    app_signup,
    payment_card,
    payment_card_prose,
    iban_transfer,
    iban_prose,
    ssn_form,
    ssn_prose,
    nino_line,
    insee_line,
    phone_support,
    phone_sms,
    jwt_header,
    jwt_query,
    aws_env,
    aws_json,
    gcp_key_line,
    gcp_service_account,
    azure_conn,
    azure_sas,
    github_line,
    github_env,
    gitlab_line,
    slack_line,
    bearer_opaque,
    basic_line,
    url_password,
    query_password,
    yaml_password,
    json_secret_fields,
    header_api_key,
    cookie_header,
    set_cookie,
    weak_key_entropy,
    pem_raw,
    k8s_secret_event,
    trailseal_event,
    db_query,
    java_exception,
    mixed_many,
    slack_webhook_payload,
]

# Hand-written positives with their labels.
HAND_POSITIVE = [
    (
        "Contact: Jürgen Müller <juergen.mueller@example.de>, Tel. +49 89 12345678",
        [("email", "juergen.mueller@example.de"), ("phone", "+49 89 12345678")],
    ),
    ("card=4242424242424242 exp=12/29 cvc=***", [("card", "4242424242424242")]),
    ("amex 3782 822463 10005 charged", [("card", "3782 822463 10005")]),
    ("IBAN GB82 WEST 1234 5698 7654 32 (Westminster)", [("iban", "GB82 WEST 1234 5698 7654 32")]),
    ("beneficiary FR1420041010050500013M02606 ok", [("iban", "FR1420041010050500013M02606")]),
    (
        "Bearer token refreshed: Bearer 2YotnFZFEjr1zCsicMWpAA expires_in=3600",
        [("bearer_token", "2YotnFZFEjr1zCsicMWpAA")],
    ),
    (
        '{"headers":{"authorization":"Basic YWRtaW46Y29ycmVjdCBob3JzZQ=="}}',
        [("basic_auth", "YWRtaW46Y29ycmVjdCBob3JzZQ==")],
    ),
    ("redis://:Sup3rS3cret@cache-1:6379/0", [("password", "Sup3rS3cret")]),
    ("MYSQL_PWD=Tr0ub4dor3x mysql -h db", [("password", "Tr0ub4dor3x")]),
    ("pgpassword='Kx9#mQ2v' psql", [("password", "Kx9#mQ2v")]),
    ("login from 2001:db8:85a3::8a2e:370:7334 port 51022", [("ip", "2001:db8:85a3::8a2e:370:7334")]),
    ("client [2001:db8::1]:443 handshake failed", [("ip", "2001:db8::1")]),
    (
        "upstream 172.16.4.20:8080 timed out, retrying 172.16.4.21:8080",
        [("ip", "172.16.4.20"), ("ip", "172.16.4.21")],
    ),
    ("allowlist 10.0.0.0/8 plus 203.0.113.7", [("ip", "10.0.0.0"), ("ip", "203.0.113.7")]),
    ("SSN on file: 536-22-1789.", [("ssn", "536-22-1789")]),
    ("NI number JG103759A provided", [("nino", "JG103759A")]),
    ("ping +14155552671 and +442071838750", [("phone", "+14155552671"), ("phone", "+442071838750")]),
    ("call me at (212) 555-0199 or 212.555.0142", [("phone", "(212) 555-0199"), ("phone", "212.555.0142")]),
    (
        "aws_secret_access_key = je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        [("aws_secret", "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY")],
    ),
    ("export GITLAB_TOKEN=glpat-xYz12-abcDEF_0987654", [("gitlab_token", "glpat-xYz12-abcDEF_0987654")]),
    (
        '{"api_key":"AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"}',
        [("gcp_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY")],
    ),
    (
        "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=send;"
        "SharedAccessKey=dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3MgbGlrZSBvbmU=",
        [("azure_key", "dGhpcyBpcyBub3QgYSByZWFsIGtleSBidXQgbG9va3MgbGlrZSBvbmU=")],
    ),
    ('session_token: "FwoGZXIvYXdzEBYaDH7example9Hk2"', [("secret", "FwoGZXIvYXdzEBYaDH7example9Hk2")]),
    # harder: values glued to numbers, punctuation and other values
    ("paid with 4111 1111 1111 1111 12/29 cvv ok", [("card", "4111 1111 1111 1111")]),
    ("card 5555-5555-5555-4444-12 rejected", [("card", "5555-5555-5555-4444")]),
    ("Client 10.20.30.40, forwarded-for 198.51.100.23.", [("ip", "10.20.30.40"), ("ip", "198.51.100.23")]),
    (
        "emails:alice@example.com;bob@example.org,carol@example.net",
        [("email", "alice@example.com"), ("email", "bob@example.org"), ("email", "carol@example.net")],
    ),
    (
        '"phone":"+4915112345678","ip":"2001:db8:1::ab9:c0a8:102"',
        [("phone", "+4915112345678"), ("ip", "2001:db8:1::ab9:c0a8:102")],
    ),
    ("ssh user@203.0.113.50 -p 2222", [("ip", "203.0.113.50")]),
    ("iban:NL91ABNA0417164300,amount:12", [("iban", "NL91ABNA0417164300")]),
    (
        "X-Forwarded-For: 203.0.113.195, 70.41.3.18, 150.172.238.178",
        [("ip", "203.0.113.195"), ("ip", "70.41.3.18"), ("ip", "150.172.238.178")],
    ),
    (
        "retry webhook https://hooks.example.com/x?token=tk_live_8c1f2e9a7b&attempt=3",
        [("secret", "tk_live_8c1f2e9a7b")],
    ),
    ("mongodb://root:Pa55word%21@mongo-0:27017/?authSource=admin", [("password", "Pa55word%21")]),
    (
        "Authorization: token ghp_0123456789abcdefghijABCDEFGHIJ012345",
        [("github_token", "ghp_0123456789abcdefghijABCDEFGHIJ012345")],
    ),
]


def hand_insee() -> str:
    body = "2841219004016"
    return f"{body}{97 - int(body) % 97:02d}"


# ------------------------------------------------------------------------------------------------
# Negative templates: tricky look-alikes, no personal data.
# ------------------------------------------------------------------------------------------------


def neg_uuid_trace(g: Gen):
    return (
        f"{g.timestamp()} INFO request done id={g.uuid()} trace_id={g.hex(32)} span_id={g.hex(16)} status=200"
    )


def neg_git(g: Gen):
    return f"ci: checkout {g.hex(40)} (short {g.hex(7)}) merged into main at {g.timestamp()}"


def neg_sha256(g: Gen):
    return f"artifact sha256:{g.hex(64)} size={g.rng.randint(10**5, 10**8)} uploaded"


def neg_docker(g: Gen):
    return f"pulled registry.example.com/app/api@sha256:{g.hex(64)} tag {g.version()}"


def neg_order(g: Gen):
    return (
        f"order ORD-{g.digits(3)}-{g.digits(2)}-{g.digits(4)} shipped, invoice INV-2026-{g.digits(6)}, "
        f"items={g.rng.randint(1, 9)}"
    )


def neg_non_luhn(g: Gen):
    return f"ledger entry {g.non_luhn_16()} posted; batch {g.non_luhn_16()} closed"


def neg_versions(g: Gen):
    return (
        f"upgrading {g.pick(['openssl', 'nginx', 'postgres', 'node'])} from {g.version()} to {g.version()} "
        f"(build {g.rng.randint(10, 20)}.0.{g.digits(5)}.{g.rng.randint(1, 999)})"
    )


def neg_windows_build(g: Gen):
    return f"agent reports os=Windows version 10.0.{g.digits(5)}.{g.rng.randint(1, 999)} kernel {g.version()}"


def neg_dates(g: Gen):
    return (
        f"report period {g.timestamp()[:10]} to {g.timestamp()[:10]} generated at "
        f"{g.rng.randint(0, 23):02d}:{g.rng.randint(0, 59):02d}:{g.rng.randint(0, 59):02d}"
    )


def neg_ports(g: Gen):
    return (
        f"listening on 0.0.0.0:{g.rng.randint(1024, 65535)} and [::]:{g.rng.randint(1024, 65535)}; upstream "
        f"{g.pick(HOSTS)}:{g.pick(['8080', '443', '5432', '6379'])}"
    )


def neg_k8s(g: Gen):
    doc = {
        "kind": "ConfigMap",
        "metadata": {
            "name": "app-config",
            "namespace": "prod",
            "uid": g.uuid(),
            "resourceVersion": g.digits(9),
            "generation": g.rng.randint(1, 50),
            "creationTimestamp": g.timestamp()[:19] + "Z",
        },
    }
    return json.dumps(doc)


def neg_base64_blob(g: Gen):
    blob = base64.b64encode(g.rng.randbytes(g.rng.randint(30, 90))).decode()
    return f"payload (base64) {blob} len={len(blob)}"


def neg_fake_jwt(g: Gen):
    header = b64url(json.dumps({"kid": g.hex(8), "typ": "at+jwt"}).encode())
    payload = b64url(json.dumps({"n": g.rng.randint(1, 99)}).encode())
    return f"cursor={header}.{payload}.{b64url(g.rng.randbytes(16))} next page"


def neg_two_part(g: Gen):
    part = b64url(json.dumps({"page": g.rng.randint(1, 99), "sort": "desc"}).encode())
    return f"GET /api/items?cursor={part}.{g.hex(8)} 200"


def neg_epoch(g: Gen):
    return (
        f"metrics ts={1764000000 + g.rng.randint(0, 10**6)} "
        f"ts_ms={1764000000000 + g.rng.randint(0, 10**9)} value={g.digits(4)}"
    )


def neg_durations(g: Gen):
    return (
        f"gc pause {g.rng.randint(1, 999)}.{g.digits(3)}ms "
        f"heap {g.rng.randint(100, 900)}MiB/{g.rng.randint(1, 8)}GiB "
        f"cpu={g.rng.randint(1, 99)}.{g.digits(1)}%"
    )


def neg_prose_secret_words(g: Gen):
    return (
        g.pick(
            [
                "password reset requested for account 48213, email sent",
                "invalid token: expired",
                "token expired at 2026-11-27T10:00:00Z, refreshing",
                "password: too short (min 12)",
                "session closed after 1800 seconds of inactivity",
                "missing bearer token in request",
                'WWW-Authenticate: Bearer realm="api", error="invalid_token"',
                "api key rotated by admin (key id 7)",
                "Basic plan selected by customer",
                "secret rotation completed: 12 secrets updated",
                "cookie consent banner shown",
            ]
        )
        + f" [{g.hex(8)}]"
    )


def neg_placeholders(g: Gen):
    return (
        g.pick(
            [
                "db url postgres://app:***@db.internal:5432/main",
                "password=****** user=app",
                'config {"password": "[redacted]", "token": null}',
                "api_key=${API_KEY} loaded from env",
                "Authorization: Bearer <redacted>",
                "token=<hidden> scope=read",
            ]
        )
        + f" req={g.uuid()}"
    )


def neg_mac_oid(g: Gen):
    mac = ":".join(g.hex(2) for _ in range(6))
    return f"dhcp lease mac {mac} oid 1.3.6.1.4.1.{g.digits(4)}.1.2 vlan {g.rng.randint(1, 4000)}"


def neg_npm(g: Gen):
    return (
        f"added lodash@{g.version()} react@18.{g.rng.randint(0, 3)}.{g.rng.randint(0, 9)} "
        f"@types/node@{g.rng.randint(18, 22)}.{g.rng.randint(0, 20)}.{g.rng.randint(0, 9)}"
    )


def neg_user_at_host(g: Gen):
    user, host = g.pick(FIRST), g.pick(["prod-db-1", "bastion", "localhost"])
    return f"deploy {user}@{host} ran migrations in {g.rng.randint(1, 99)}s"


def neg_arn(g: Gen):
    return (
        f"assumed arn:aws:iam::{g.digits(12)}:role/deployer session {g.hex(16)} "
        f"region=eu-west-{g.rng.randint(1, 3)} request {g.uuid()}"
    )


def neg_counts(g: Gen):
    return (
        f"processed {g.rng.randint(100, 999)} {g.rng.randint(100, 999)} {g.rng.randint(1000, 9999)} records; "
        f"ratio {g.rng.randint(0, 9)}.{g.digits(3)}; code E{g.digits(4)}"
    )


def neg_event_json(g: Gen):
    event = {
        "id": g.uuid(),
        "time": g.timestamp(),
        "category": "system",
        "action": "job.run",
        "outcome": "success",
        "actor": {"id": "scheduler", "type": "system"},
        "source": {"component": "cron", "kind": "infra"},
        "request": {"trace_id": g.hex(32), "span_id": g.hex(16), "bytes": g.rng.randint(0, 10**7)},
        "attributes": {
            "job": "vacuum",
            "duration_ms": g.rng.randint(1, 10**6),
            "version": g.version(),
            "checksum": g.hex(64),
            "rows": g.rng.randint(0, 10**9),
        },
    }
    return json.dumps(event)


def neg_cve(g: Gen):
    ghsa = "23456789cfghjmpqrvwx"
    return (
        f"scanner: CVE-2026-{g.digits(5)} in libfoo {g.version()} "
        f"(CVSS {g.rng.randint(1, 9)}.{g.rng.randint(0, 9)}) "
        f"GHSA-{g.chars(ghsa, 4)}-{g.chars(ghsa, 4)}-{g.chars(ghsa, 4)}"
    )


def neg_stack(g: Gen):
    return (
        f"\tat org.acme.http.Client.send(Client.java:{g.rng.randint(10, 999)}) ~[client-{g.version()}.jar:?] "
        f"thread=pool-{g.rng.randint(1, 9)}-thread-{g.rng.randint(1, 99)}"
    )


def neg_hex_ids(g: Gen):
    return (
        f"container {g.hex(64)[:12]} started, image id {g.hex(12)}, "
        f"pid {g.rng.randint(100, 99999)}, inode {g.digits(9)}"
    )


NEGATIVE = [
    neg_uuid_trace,
    neg_git,
    neg_sha256,
    neg_docker,
    neg_order,
    neg_non_luhn,
    neg_versions,
    neg_windows_build,
    neg_dates,
    neg_ports,
    neg_k8s,
    neg_base64_blob,
    neg_fake_jwt,
    neg_two_part,
    neg_epoch,
    neg_durations,
    neg_prose_secret_words,
    neg_placeholders,
    neg_mac_oid,
    neg_npm,
    neg_user_at_host,
    neg_arn,
    neg_counts,
    neg_event_json,
    neg_cve,
    neg_stack,
    neg_hex_ids,
]

HAND_NEGATIVE = [
    "2026-11-27 14:02:11,532 INFO  HikariPool-1 - Start completed.",
    "Listening on http://0.0.0.0:8080 (press CTRL+C to quit)",
    "version 1.2.3.4 deployed to staging",
    "kubectl rollout status deployment/api --revision=42",
    'resourceVersion="918273645" fieldManager=kubectl-client-side-apply',
    "order 4111-1111-1111-1112 is not a card (fails Luhn)",
    "SKU AB123456X restocked, bin 12-34",
    "Europe/Paris offset +01:00, Asia/Kolkata +05:30",
    "timeout after 30000ms (attempt 3/5)",
    "sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709 matches",
    'ETag: "33a64df551425fcc55e4d42a148795d9f25f89d4"',
    "std::vector<int>::push_back took 12 ns; Foo::Bar::baz called",
    "date 27.11.2026 time 14.02.33",
    "jar org.apache.logging.log4j:log4j-core:2.17.1 ok",
    "user agent Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.6778.86",
    "range bytes=0-1048575/20971520",
    "git describe v2.14.1-13-g3f4e5d6",
    "The quick brown fox jumps over the lazy dog",
    "HTTP/1.1 429 Too Many Requests Retry-After: 30",
    "mount /dev/nvme0n1p1 on /var/lib/data type ext4 (rw,relatime)",
    "snapshot snap-0a1b2c3d4e5f67890 of vol-0123456789abcdef0 completed",
    "Pod api-7f9c6b8d4-x2lzq Running 2/2 restarts 0 age 3d4h",
    "checksum crc32=0x1A2B3C4D adler=0x0F0E0D0C",
    "isbn 978-3-16-148410-0 catalogued",
    "lat 48.8566 lon 2.3522 accuracy 12.5m",
    "price 1,299.00 EUR incl. VAT 20%",
    "request-id: req_8fJ2kL0pQ1 idempotency-key: 7f3e2a10-9c1b-4d5e-8f6a-0b1c2d3e4f50",
    "exit code 137 (OOMKilled) after 3600 s",
    "tx 0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060 mined",
    "max_tokens=4096 token_count=1532 prompt_tokens=812",
]


def make_lines(seed: int = SEED, per_group: int = PER_GROUP) -> list[dict]:
    """Every corpus line, positives first, deterministic for a seed."""
    g = Gen(seed)
    lines = []
    hand = list(HAND_POSITIVE)
    insee = hand_insee()
    hand.append((f"N° sécu {insee} enregistré", [("insee", insee)]))
    for text, labels in hand:
        lines.append({"group": "positive", "template": "hand", "text": text, "labels": labels})
    while len(lines) < per_group:
        template = POSITIVE[len(lines) % len(POSITIVE)]
        text, labels = template(g)
        lines.append({"group": "positive", "template": template.__name__, "text": text, "labels": labels})
    for text in HAND_NEGATIVE:
        lines.append({"group": "negative", "template": "hand", "text": text, "labels": []})
    while len(lines) < 2 * per_group:
        template = NEGATIVE[len(lines) % len(NEGATIVE)]
        lines.append({"group": "negative", "template": template.__name__, "text": template(g), "labels": []})
    for i, line in enumerate(lines):
        line["id"] = i
        line["labels"] = [list(label) for label in line["labels"]]
        missing = [label for label in line["labels"] if label[1] not in line["text"]]
        assert not missing, (line, missing)
    return lines


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else OUT
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = make_lines()
    with out.open("w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps(line, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {len(lines)} lines to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
