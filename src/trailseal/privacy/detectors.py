"""Detectors of personal data and secrets in strings: a regex each, a validator where one exists.

`scan(text)` first asks `might_match(text)`: one regex pass that proves most strings (identifiers,
paths, host names, hex ids) cannot hold a match of any detector. Otherwise it runs every detector
whose cheap prefilter (a substring that must be present) passes, validates candidates, then keeps
the most specific finding where two overlap.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from trailseal.privacy import names
from trailseal.privacy import validators as v

SECRET_KINDS = (
    "private_key",
    "jwt",
    "aws_key",
    "aws_secret",
    "gcp_key",
    "azure_key",
    "github_token",
    "gitlab_token",
    "slack_token",
    "basic_auth",
    "bearer_token",
    "password",
    "secret",
)
NATIONAL_ID_KINDS = ("ssn", "nino", "insee")
PERSONAL_KINDS = ("iban", "card", *NATIONAL_ID_KINDS, "email", "phone", "ip")
KINDS = SECRET_KINDS + PERSONAL_KINDS

# Where two findings overlap the higher priority wins (then the longer one).
PRIORITY = {kind: len(KINDS) - i for i, kind in enumerate(KINDS)}


class Finding(NamedTuple):
    """One detected value: its kind and where it sits in the text (end exclusive)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Detector:
    """One kind: a regex, an optional validator, and substrings one of which must occur for it to run."""

    kind: str
    pattern: re.Pattern[str]
    validate: Callable[[str], bool] | None = None
    needles: tuple[str, ...] = ()
    lowercase_needles: bool = False
    group: int = 0
    # A gate on ASCII text, by its character classes (``ascii_shape``): the least count of digits a finding
    # needs (the regex's, or its validator's), and shapes one of which must occur. False positives are fine,
    # false negatives are not (tests/privacy/test_fast_path.py checks every detector against its gate).
    min_digits: int = 0
    shapes: tuple[bytes, ...] = ()
    letter: bool = False  # a match always holds an ASCII letter (implied when every needle has one)

    def possible(self, shape: bytes, digits: int) -> bool:
        """Whether the ASCII text of this shape (holding ``digits`` digits) may hold a finding: it has the
        digits and a shape the detector needs, and a letter if its matches always have one."""
        return (digits >= self.min_digits and (not self.shapes or any(s in shape for s in self.shapes))
                and (not self.needs_letter or has_letter(shape)))

    def __post_init__(self) -> None:
        needles = "|".join(re.escape(n) for n in self.needles)
        object.__setattr__(self, "_needle_re", re.compile(needles) if len(self.needles) > 1 else None)
        object.__setattr__(self, "needs_letter", self.letter or bool(self.needles) and all(
            any("a" <= c.lower() <= "z" for c in needle) for needle in self.needles))

    def wanted(self, text: str, lower: str) -> bool:
        """The cheap prefilter: does the text contain one of the needles?"""
        if not self.needles:
            return True
        haystack = lower if self.lowercase_needles else text
        if self._needle_re is None:
            return self.needles[0] in haystack
        return self._needle_re.search(haystack) is not None

    def find(self, text: str, lower: str) -> Iterator[Finding]:
        """Validated findings of this kind in text (lower is text.lower(), for detectors that want it)."""
        for match in self.pattern.finditer(text):
            value = match.group(self.group)
            if self.validate is None or self.validate(value):
                yield Finding(self.kind, match.start(self.group), match.end(self.group))


class IbanDetector(Detector):
    """IBANs, printed compact or in groups of four; trims words swallowed after the last group."""

    def find(self, text: str, lower: str) -> Iterator[Finding]:
        for match in self.pattern.finditer(text):
            start, end = match.span()
            expected = v.IBAN_LENGTHS.get(text[start : start + 2])
            if expected is None:
                continue
            end = _end_after_alnum(text, start, end, expected)
            if end and v.iban_ok(text[start:end].replace(" ", "")):
                yield Finding(self.kind, start, end)


class CardDetector(Detector):
    """Card numbers; a grouped candidate that fails is retried without its trailing groups (`... 1111 10`)."""

    def find(self, text: str, lower: str) -> Iterator[Finding]:
        for match in self.pattern.finditer(text):
            start, candidate = match.start(), match.group()
            separator = next((c for c in candidate if not c.isdigit()), None)
            while not v.card_ok(candidate) and separator and candidate.count(separator) > 2:
                candidate = candidate.rsplit(separator, 1)[0]
            if v.card_ok(candidate):
                yield Finding(self.kind, start, start + len(candidate))


class IpDetector(Detector):
    """IP addresses, skipping dotted version numbers (`version 1.2.3.4`)."""

    def find(self, text: str, lower: str) -> Iterator[Finding]:
        for finding in super().find(text, lower):
            before = text[max(0, finding.start - 10) : finding.start].lower()
            if not _VERSION_CONTEXT.search(before):
                yield finding


class KeyValueDetector(Detector):
    """Values after secret-like names (`password=`, `"token": "..."`, `X-Api-Key:`, `Cookie:`).

    Needles (lower-case fragments of secret words) locate candidate names with str.find; each name is
    then classified as a whole, so `bypass=` or `token_count=` never count. Every character is walked
    at most once, and names inside a value already found are skipped.
    """

    def find(self, text: str, lower: str) -> Iterator[Finding]:
        done = 0
        for hit in _needle_hits(lower, self.needles):
            if hit < done:
                continue
            start = _name_start(text, hit)
            done = _NAME.match(text, start).end()
            separator = self.pattern.match(text, done)
            if separator is None or (start > 0 and text[start - 1] == "/"):
                continue
            finding = _key_value_finding(text, text[start:done], separator)
            if finding:
                done = max(done, finding.end)
                yield finding


def _needle_hits(lower: str, needles: tuple[str, ...]) -> list[int]:
    """Every position where a needle occurs, in order."""
    hits = []
    for needle in needles:
        i = lower.find(needle)
        while i >= 0:
            hits.append(i)
            i = lower.find(needle, i + len(needle))
    return sorted(hits)


def _name_start(text: str, hit: int) -> int:
    """Walk back from a needle to the start of the name it is part of."""
    while hit > 0 and (text[hit - 1].isalnum() or text[hit - 1] in "_-."):
        hit -= 1
    return hit


def _end_after_alnum(text: str, start: int, end: int, count: int) -> int:
    """The index just after the count-th alphanumeric character from start (0 if too few)."""
    seen = 0
    for i in range(start, end):
        if text[i] != " ":
            seen += 1
            if seen == count:
                return i + 1
    return 0


def _key_value_finding(text: str, key: str, match: re.Match[str]) -> Finding | None:
    """The finding for the value after a name, if the name and the value make it a secret."""
    kind = names.classify_key(key)
    if kind is None:
        return None
    value_match = _VALUE.match(text, match.end())
    if names.is_cookie_key(key):
        value_match = _COOKIE_VALUE.match(text, match.end())
    if value_match is None:
        return None
    start, end = value_match.span("value")
    value = value_match.group("value").rstrip()
    end = start + len(value)
    if v.placeholder(value):
        return None
    if kind == "weak":
        return Finding("secret", start, end) if v.looks_random(value) else None
    if names.is_aws_secret_key(key) and len(value) == 40:
        return Finding("aws_secret", start, end)
    quoted = value_match.group("quote") or match.group("sep").endswith("=")
    if not quoted and not _credential_like(value):
        return None
    return Finding(kind, start, end)


def _credential_like(value: str) -> bool:
    """After a bare `name:` only values that look like credentials count (not `token: expired`)."""
    return len(value) >= 6 and (not value.isalpha() or not (value.islower() or value.isupper()))


def _bearer_ok(token: str) -> bool:
    """A bearer credential has a digit or mixed case (so `Bearer authentication` is prose)."""
    return not v.placeholder(token) and (any(c.isdigit() for c in token) or not token.islower())


def _url_password_ok(password: str) -> bool:
    """`user:***@host` is already redacted."""
    return not v.placeholder(password)


_NAME = re.compile(r"[\w.-]*+")
_VERSION_CONTEXT = re.compile(r"(?:\bversion|\brelease|\bbuild|\bver|\bv)[\s=:]*$")
_VALUE = re.compile(
    r"""[ \t]*\\?(?P<quote>["'])?(?:(?:bearer|basic|token|digest|negotiate)[ \t]+)?+"""
    r"""(?P<value>\$\{[^}\s]*\}|(?(quote)[^"'\\\r\n]+|[^\s"'\\&,;<>\[\]{}()|]+))""",
    re.IGNORECASE,
)
_COOKIE_VALUE = re.compile(r"""[ \t]*\\?(?P<quote>["'])?(?P<value>[^"'\\\r\n]+)""")

_IPV4 = r"\d(?<![\w.-]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)"
_IPV6 = r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?(?![\w:]|\.\w)"
_PHONE = (
    r"(?<![\w+./-])(?:"
    r"\+[1-9]\d{0,2}(?:[ .-]?(?:\(\d{1,4}+\)|\d{1,4}+)){2,6}"
    r"|\(\d{3}\)[ ]?\d{3}[ .-]\d{4}"
    r"|\d{3}([.-])\d{3}\1\d{4}"
    r"|0\d{2,4}[ ]\d{3,4}[ ]?\d{3,4}"
    r"|0[1-9](?:[ ]\d{2}){4}"
    r")(?![\w-]|\.\d)"
)


def _re(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """re.compile, short enough to keep the detector table readable."""
    return re.compile(pattern, flags)


def _detectors(national_ids: Iterable[str]) -> list[Detector]:
    """Every detector, most specific first, with the chosen national ids."""
    national = set(national_ids)
    unknown = national - set(NATIONAL_ID_KINDS)
    if unknown:
        raise ValueError(f"unknown national id kinds: {sorted(unknown)}")
    found = [
        Detector(
            "private_key",
            _re(
                r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                r"(?:-----END \1PRIVATE KEY(?: BLOCK)?-----|\Z)"
            ),
            needles=("-----BEGIN",),
        ),
        Detector(
            "jwt",
            _re(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*"),
            v.jwt_ok,
            ("eyJ",),
        ),
        Detector(
            "aws_key",
            _re(
                r"(?<![A-Za-z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|ABIA|ACCA)"
                r"[A-Z2-7]{16}(?![A-Za-z0-9])"
            ),
            needles=("AKIA", "ASIA", "AGPA", "AIDA", "AROA", "AIPA", "ANPA", "ANVA", "ABIA", "ACCA"),
        ),
        Detector("gcp_key", _re(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"), needles=("AIza",)),
        Detector(
            "azure_key",
            _re(r"(?:AccountKey|SharedAccessKey|AccessKey)=([A-Za-z0-9+/]{40,}={0,2})"),
            needles=("AccessKey=", "AccountKey="),
            group=1,
        ),
        Detector("azure_key", _re(r"[?&]sig=([A-Za-z0-9%+/]{30,})"), needles=("sig=",), group=1),
        Detector(
            "github_token",
            _re(
                r"(?<![\w])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})"
                r"(?![\w])"
            ),
            needles=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        ),
        Detector("gitlab_token", _re(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}"), needles=("glpat-",)),
        Detector("slack_token", _re(r"(?<![\w-])xox[bpoasr]-[A-Za-z0-9-]{10,}"), needles=("xox",)),
        Detector(
            "basic_auth",
            _re(r"\bbasic[ \t]+([A-Za-z0-9+/]{6,}={0,2})(?![\w+/=])", re.IGNORECASE),
            v.basic_auth_ok,
            ("basic",),
            True,
            1,
        ),
        Detector(
            "bearer_token",
            _re(r"\bbearer[ \t]+([A-Za-z0-9._~+/-]{8,}=*)", re.IGNORECASE),
            _bearer_ok,
            ("bearer",),
            True,
            1,
        ),
        Detector(
            "password",
            _re(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s/?#@:]*:([^\s/?#@]+)@"),
            _url_password_ok,
            ("://",),
            group=1,
            letter=True,  # the URL's scheme
        ),
        KeyValueDetector(
            "secret",
            _re(r"(?P<sep>\\?[\"']?[ \t]*[:=])"),
            needles=(
                "pass",
                "pw",
                "secret",
                "token",
                "key",
                "auth",
                "credential",
                "sess",
                "cookie",
                "sig",
                "jwt",
                "otp",
                "pin",
                "cvv",
                "cvc",
                "hmac",
                "salt",
                "nonce",
            ),
            lowercase_needles=True,
        ),
        CardDetector(
            "card",
            _re(
                r"\d(?<![\w+-]\d)\d{3}(?:([ -]?)\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?"
                r"|([ -]?)\d{6}\2\d{4,5})(?![\w-])"
            ),
            min_digits=13,
        ),
        IbanDetector("iban", _re(r"[A-Z](?<!\w.)[A-Z]\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?!\w)"),
                     shapes=(b"AA99",)),
        Detector(
            "email",
            _re(
                r"(?<![\w.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
            ),
            needles=("@",),
            letter=True,  # the top-level domain
        ),
        Detector("phone", _re(_PHONE), v.phone_ok, min_digits=8),  # phone_ok: 8-15 digits
        IpDetector("ip", _re(_IPV4), v.ipv4_ok, (".",)),
        IpDetector("ip", _re(_IPV6), v.ipv6_ok, (":",)),
    ]
    if "ssn" in national:
        found.append(Detector("ssn", _re(r"\d(?<![\w-]\d)\d{2}-\d{2}-\d{4}(?![\w-])"), v.ssn_ok, ("-",)))
    if "nino" in national:
        found.append(
            Detector(
                "nino",
                _re(
                    r"[A-CEGHJ-PR-TW-Z](?<![\w-].)[A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"
                    r"(?![\w-])"
                ),
                v.nino_ok,
                shapes=(b"AA9", b"AA 9"),
            )
        )
    if "insee" in national:
        found.append(
            Detector(
                "insee",
                _re(
                    r"[12](?<![\w-][12]) ?\d{2} ?\d{2} ?(?:\d{2}|2[AB]) ?\d{3} ?\d{3} ?\d{2}"
                    r"(?![\w-])"
                ),
                v.insee_ok,
                min_digits=13,
            )
        )
    return found


def resolve_overlaps(findings: list[Finding]) -> list[Finding]:
    """Keep the most specific of overlapping findings (priority, then length), in text order."""
    if len(findings) < 2:
        return findings
    ranked = sorted(findings, key=lambda f: (-PRIORITY[f.kind], f.start - f.end, f.start))
    kept: list[Finding] = []
    for finding in ranked:
        if all(finding.end <= k.start or finding.start >= k.end for k in kept):
            kept.append(finding)
    return sorted(kept, key=lambda f: f.start)


FOUND_MAX_ENTRIES = 32_768  # short strings whose findings a Scanner remembers (emptied when full)
FOUND_MAX_CHARS = 256


class Scanner:
    """All detectors, with a configurable set of national ids."""

    def __init__(self, national_ids: Iterable[str] = NATIONAL_ID_KINDS):
        self.national_ids = tuple(sorted(set(national_ids)))
        self.detectors = _detectors(self.national_ids)
        # What protect() remembers about this scanner's verdicts (bounded; see protect._is_clean):
        self.clean: set[str] = set()  # strings it found nothing in, and sealed as they are
        self.clean_names: dict[str, str | None] = {}  # such attribute names -> what the name says
        # the detectors' gates (Detector.possible): what they test, and the detectors each outcome admits
        self.thresholds = sorted({d.min_digits for d in self.detectors if d.min_digits})
        self.shapes = sorted({s for d in self.detectors for s in d.shapes})
        self.admitted: dict[tuple, list[Detector]] = {}
        self.found: dict[str, tuple[Finding, ...]] = {}  # short strings' findings (`127.0.0.1` recurs)

    def scan(self, text: str) -> list[Finding]:
        """Every finding in text, overlaps resolved, in order of position (remembered for short text that
        has some: a scan depends on nothing but the text)."""
        known = self.found.get(text)
        if known is not None:
            return list(known)
        findings = self._scan(text)
        if findings and len(text) <= FOUND_MAX_CHARS:
            if len(self.found) >= FOUND_MAX_ENTRIES:
                self.found.clear()
            self.found[text] = tuple(findings)
        return findings

    def _scan(self, text: str) -> list[Finding]:
        if text.isascii():
            shape = ascii_shape(text)
            if shape is None:
                return []
            detectors = self._possible(shape)
        elif might_match(text):
            detectors = self.detectors
        else:
            return []
        lower = ascii_lower(text)
        findings = [f for d in detectors if d.wanted(text, lower) for f in d.find(text, lower)]
        return resolve_overlaps(findings)

    def _possible(self, shape: bytes) -> list[Detector]:
        """The detectors whose gates admit an ASCII text of this shape: one list per outcome of the gates'
        tests (how many digit thresholds it reaches, which shapes occur, whether it has a letter), made at
        its first use."""
        digits = shape.count(b"9")
        outcome = (bisect_right(self.thresholds, digits), has_letter(shape), *[s in shape for s in self.shapes])
        admitted = self.admitted.get(outcome)
        if admitted is None:
            admitted = self.admitted[outcome] = [d for d in self.detectors if d.possible(shape, digits)]
        return admitted


_LETTER = re.compile(rb"[A-Za-z]")


def has_letter(shape: bytes) -> bool:
    """Whether an ASCII shape (``ascii_shape``: capitals are `A`, small letters themselves) has a letter."""
    return _LETTER.search(shape) is not None


def ascii_lower(text: str) -> str:
    """Lower-case text without changing its length (str.lower can grow some non-ASCII letters)."""
    lower = text.lower()
    return lower if len(lower) == len(text) else text.translate(_ASCII_LOWER)


_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

# might_match: a necessary condition for a match of any detector above, checked in one regex pass.
# Every detector's regex needs at least one of: a character of `@ : = + ( tab` (email, URLs and
# key=value secrets, IPv6, azure, phone), an upper-case ASCII letter (PEM, JWT, cloud keys, IBAN,
# NINO, `Basic`/`Bearer` in any case), a lower-case token prefix (`gh?_`, `github_pat_`, `glpat-`,
# `xox`, `basic `, `bearer `), or a digit layout: `d.d` (IPv4, phone), `ddd-dd` (SSN, phone, card),
# `d d` (spaced card, phone, INSEE), or a run of 13-19 digits between non-word characters other
# than `-` (card, INSEE). tests/privacy/test_fast_path.py checks this against the detectors.
#
# ASCII letters and digits only, with a lower-case letter and no upper-case one (hex ids, trace ids,
# plain words) cannot match at all: every detector needs punctuation, a space, an upper-case letter,
# or (card, INSEE) a digit run with non-word characters around it, which would be all of the string.
# Other ASCII text (nearly all the rest) is mapped to character classes: digit -> 9, A-Z -> A,
# `@:=+(` and tab -> !, any other character that is neither a letter nor one of `._-` and space
# -> /. Then every alternative starts with a literal, the regex engine skips everything else in C,
# and a run of digits costs nothing unless a boundary character precedes it.


def _class_table() -> bytes:
    table = bytearray(range(256))
    for code in range(128):
        char = chr(code)
        if "0" <= char <= "9":
            table[code] = ord("9")
        elif "A" <= char <= "Z":
            table[code] = ord("A")
        elif char in "@:=+(\t":
            table[code] = ord("!")
        elif not ("a" <= char <= "z" or char in "._- "):
            table[code] = ord("/")
    return bytes(table)


_CLASSES = _class_table()
_RUN = rb"9{13,19}(?![-_a-z9])"  # 13-19 digits, no word character or `-` after them
_ASCII_GATE = re.compile(
    rb"!|A|gh|github_pat_|glpat-|xox|basic |bearer "
    rb"|-(?<=999-)99"
    rb"|\.(?:(?<=9\.)9|" + _RUN + rb")"
    rb"| (?:(?<=9 )9|" + _RUN + rb")"
    rb"|/" + _RUN
)
# Other text: the same conditions on the text itself (Unicode digits and word characters, as the
# detectors see them). Every alternative is anchored on a character of [\WA-Z_]; the caller puts a
# space in front so that a digit run at the very start has a non-word character before it.
_UNICODE_GATE = re.compile(
    r"[\WA-Z_](?:"
    r"(?<=[@:=+(\t])"
    r"|(?<=-)(?:(?<=glpat-)|(?<=xox[bpoasr]-)|(?<=\d{3}-)(?=\d\d))"
    r"|(?<=\.)(?<=\d\.)(?=\d)"
    r"|(?<= )(?:(?<=\d )(?=\d)|(?<=(?i:basic) )|(?<=(?i:bearer) ))"
    r"|(?<=[A-Z])(?:(?<=[A-Z]{2})(?= ?\d\d)|(?<=-----BEGIN)|(?<=eyJ)|(?<=2[AB])"
    r"|(?<=A)(?=KIA|SIA|GPA|IDA|ROA|IPA|NPA|NVA|BIA|CCA|Iza))"
    r"|(?<=_)(?:(?<=gh[pousr]_)|(?<=github_))"
    r"|(?<=[^\w-])(?=\d{13,19}(?![\w-]))"
    r")"
)


def might_match(text: str) -> bool:
    """False only if no detector can find anything in text (True is no promise that one will)."""
    if text.isascii():
        return ascii_shape(text) is not None
    return _UNICODE_GATE.search(" " + text) is not None


def ascii_shape(text: str) -> bytes | None:
    """ASCII text as its character classes (see above), "/" in front; None if no detector can match it."""
    data = text.encode()
    if data.isalnum() and data.islower():  # [a-z0-9] with a letter: hex ids, words (see above)
        return None
    shape = (b"/" + data).translate(_CLASSES)  # "/" in front: a digit run at the very start follows a non-word
    return shape if _ASCII_GATE.search(shape) is not None else None  # character


DEFAULT_SCANNER = Scanner()


def scan(text: str) -> list[Finding]:
    """Every personal-data or secret finding in text, using every detector."""
    return DEFAULT_SCANNER.scan(text)
