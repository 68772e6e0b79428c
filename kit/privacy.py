"""Curation stage 1: privacy and safety. Nothing identifiable may reach annotation or training.

Personal data is found by validated recognisers rather than by bare patterns: phone numbers by Google's
`phonenumbers` (the libphonenumber port: real numbering plans, international formats); payment cards by their
length, issuer prefix and Luhn checksum; US social security numbers by the SSA's validity rules; IP addresses by
the standard library's `ipaddress`; URLs by `urllib.parse`, flagged when a query or fragment carries a secret;
e-mail addresses by the address grammar; street addresses by number + name + street type. Each hit is replaced
by a typed placeholder such as `[EMAIL]`, so the sentence stays readable for raters.

Unsafe conversations are dropped by a documented rule set (SAFETY_RULES): an explicit request to harm someone,
to break into accounts, to steal, or to bully. Edgy-but-benign requests (fiction, games, "kill a process") stay.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import phonenumbers

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "gov_id": "[GOV_ID]", "ip": "[IP]",
                "address": "[ADDRESS]", "secret_url": "[URL]"}

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
CARD_RE = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
SSN_RE = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])")
URL_RE = re.compile(r"https?://[^\s<>\"')]+")
STREET_TYPES = r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace)"
ADDRESS_RE = re.compile(rf"\b\d{{1,5}}\s+(?:[A-Z][a-z]+\s+){{1,3}}{STREET_TYPES}\b\.?(?:,\s*[A-Z][a-z]+(?:\s[A-Z][a-z]+)?)?")
SECRET_KEYS = re.compile(r"(token|key|secret|password|passwd|pwd|sig|signature|auth|session|sid|code)", re.I)
PHONE_REGIONS = ("US", "GB", "DE", "FR", "IN")  # regions tried for numbers written without a +country code

SAFETY_RULES: dict[str, re.Pattern] = {
    "violence": re.compile(r"\b(?:make|build|get)\b.{0,30}\b(?:weapon|bomb|gun)\b.{0,40}\b(?:hurt|kill|harm|attack)"
                           r"|\b(?:hurt|kill|harm|poison)\s+(?:my|a|the|his|her)\s+(?:neighbou?r|wife|husband|boss|"
                           r"teacher|classmate|ex|family)", re.I),
    "account_intrusion": re.compile(r"\b(?:hack|break)\s+(?:into|in to)\b.{0,40}\b(?:email|account|phone|instagram|"
                                    r"facebook)", re.I),
    "theft": re.compile(r"\b(?:shoplift|steal from (?:a|the) store|without getting caught)\b", re.I),
    "harassment": re.compile(r"\b(?:bully|harass|threaten|dox+)\s+(?:someone|him|her|them|my|a)\b", re.I),
}


@dataclass(frozen=True)
class Finding:
    kind: str
    start: int
    end: int
    text: str


def luhn_ok(digits: str) -> bool:
    total = 0
    for k, ch in enumerate(reversed(digits)):
        d = int(ch)
        if k % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(raw: str) -> bool:
    digits = re.sub(r"\D", "", raw)
    if not 13 <= len(digits) <= 19 or not luhn_ok(digits) or len(set(digits)) == 1:
        return False
    # issuer prefixes: Visa 4, Mastercard 51-55 / 2221-2720, Amex 34/37, Discover 6011/65, Diners 36/38, JCB 35
    return bool(re.match(r"4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[4-8]|6(?:011|5)", digits))


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


def _ip_ok(raw: str) -> bool:
    try:
        ip = ipaddress.ip_address(raw)
    except ValueError:
        return False
    return not (ip.is_unspecified or ip.is_loopback)


def _secret_url(raw: str) -> bool:
    parts = urlsplit(raw.rstrip(".,;!?"))
    pairs = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment, keep_blank_values=True)
    if any(SECRET_KEYS.search(k) and len(v) >= 6 for k, v in pairs):
        return True
    return bool(parts.username or parts.password)


def find_pii(text: str) -> list[Finding]:
    """Every piece of personal data in `text`, non-overlapping, in order."""
    found: list[Finding] = []

    def add(kind, start, end):
        if not any(f.start < end and start < f.end for f in found):
            found.append(Finding(kind, start, end, text[start:end]))

    for m in URL_RE.finditer(text):
        if _secret_url(m.group()):
            add("secret_url", m.start(), m.start() + len(m.group().rstrip(".,;!?")))
    for m in EMAIL_RE.finditer(text):
        add("email", m.start(), m.end())
    # Phones before cards and ids: an international number can pass a card checksum. A number written with
    # +country code is redacted when its length is possible for that country, even if the block is unassigned
    # (people mistype, and fake numbers are personal-looking too); a national number must be valid in one of
    # PHONE_REGIONS and written with separators, so bare digit runs (order and tracking numbers) are left alone.
    for m in phonenumbers.PhoneNumberMatcher(text, "US", leniency=phonenumbers.Leniency.POSSIBLE):
        if m.raw_string.lstrip().startswith("+"):
            add("phone", m.start, m.end)
    for region in PHONE_REGIONS:
        for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID):
            if re.search(r"[\s().-]", m.raw_string.strip()):
                add("phone", m.start, m.end)
    for m in SSN_RE.finditer(text):
        if _ssn_ok(*m.groups()):
            add("gov_id", m.start(), m.end())
    for m in CARD_RE.finditer(text):
        if _card_ok(m.group()):
            add("card", m.start(), m.end())
    for m in IPV4_RE.finditer(text):
        if _ip_ok(m.group()):
            add("ip", m.start(), m.end())
    for m in IPV6_RE.finditer(text):
        if _ip_ok(m.group()):
            add("ip", m.start(), m.end())
    for m in ADDRESS_RE.finditer(text):
        add("address", m.start(), m.end())
    return sorted(found, key=lambda f: f.start)


def redact(text: str) -> tuple[str, list[Finding]]:
    findings = find_pii(text)
    out, last = [], 0
    for f in findings:
        out.append(text[last:f.start])
        out.append(PLACEHOLDERS[f.kind])
        last = f.end
    out.append(text[last:])
    return "".join(out), findings


def unsafe_reason(text: str) -> str | None:
    for reason, rule in SAFETY_RULES.items():
        if rule.search(text):
            return reason
    return None


def filter_conversations(records: list[dict]) -> tuple[list[dict], dict]:
    """Redact personal data in every message and drop unsafe conversations. Returns (kept, report), where the
    report counts redactions per kind and drops per reason, and keeps a few before/after examples."""
    kept, report = [], {"conversations_in": len(records), "dropped": {}, "redacted": {}, "examples": []}
    for rec in records:
        reason = next((r for m in rec["messages"] if m["role"] == "user" for r in [unsafe_reason(m["content"])] if r),
                      None)
        if reason:
            report["dropped"][reason] = report["dropped"].get(reason, 0) + 1
            continue
        messages = []
        for m in rec["messages"]:
            clean, findings = redact(m["content"])
            for f in findings:
                report["redacted"][f.kind] = report["redacted"].get(f.kind, 0) + 1
            if findings and len(report["examples"]) < 8:
                report["examples"].append({"before": m["content"], "after": clean})
            messages.append(dict(m, content=clean))
        out = {k: v for k, v in rec.items() if k != "messages"}
        out["messages"] = messages
        kept.append(out)
    report["conversations_out"] = len(kept)
    return kept, report


# ---------------------------------------------------------------------------------------------- a planted test set
_HAND_PLANTED = [  # formats the world's generator does not produce
    ("phone", "(415) 555-2671"), ("phone", "415-555-2671"), ("phone", "+1 415 555 2671"), ("phone", "+1-212-555-0147"),
    ("phone", "+44 20 7946 0958"), ("phone", "020 7946 0958"), ("phone", "+49 30 901820"), ("phone", "+33 1 42 68 53 00"),
    ("phone", "+91 22 2778 1234"), ("phone", "+61 2 9374 4000"),
    ("email", "Jane.Doe+chat@Example.co.uk"), ("email", "x_y-z@mail.sub.example.org"), ("email", "KAI99@PROTON.ME"),
    ("card", "5500-0000-0000-0004"), ("card", "3782 822463 10005"), ("card", "6011111111111117"),
    ("gov_id", "078 05 1120"), ("ip", "2001:db8:85a3::8a2e:370:7334".replace("::", ":0:0:")), ("ip", "172.16.254.1"),
    ("address", "1600 Pennsylvania Avenue, Washington"), ("address", "42 Wallaby Way"), ("address", "7 Rue Lane"),
    ("secret_url", "https://user:hunter2@files.example.net/export"),
    ("secret_url", "https://api.example.io/v1/items?api_key=ZX81ab99cd77#top"),
    ("secret_url", "http://example.com/reset#access_token=9f8e7d6c5b4a"),
]
_LOOKALIKES = [
    "version 2.14.1 is out", "ISBN 978-3-16-148410-0", "the meeting is on 2024-11-23 at 10:30", "it costs $1,299.99",
    "final score 21-14", "room 1204, floor 3", "order #48213 shipped", "see https://example.com/recipes?page=2&sort=new",
    "read http://blog.example.org/post/123", "find me as @sam_writes", "write to me at home", "user at example dot com",
    "I walked 5 miles down the street", "Street Fighter 2 is a classic", "chapter 12 of the book", "level 99 boss",
    "the year 1999", "open from 9 to 5", "a 3.5 star review", "the code word is banana", "flight BA 2490 at gate 12",
    "1 cup flour, 2 eggs", "it was 42 degrees", "my high score is 1,000,000", "pi is 3.14159",
]


def pii_benchmark(seed: int = 0, n_generated: int = 105, n_lookalikes: int = 105) -> tuple[list[dict], list[str]]:
    """Planted personal data in sentences (kind, text, the planted value) and look-alikes that are not personal
    data: the set the privacy filter's recall and precision are measured on."""
    from .seeding import rng
    from .world.prompts import PII_TEMPLATES, fake_pii, luhn_digit

    r = rng(seed, "pii-benchmark")
    kinds = list(PII_TEMPLATES)
    planted = []
    for k in range(n_generated):
        kind = kinds[k % len(kinds)]
        value = fake_pii(kind, r, ["sam", "maya", "leo", "ines"][k % 4])
        template = PII_TEMPLATES[kind][int(r.integers(len(PII_TEMPLATES[kind])))]
        planted.append({"kind": kind, "value": value, "text": "hey! " + template.format(v=value)})
    for kind, value in _HAND_PLANTED:
        planted.append({"kind": kind, "value": value, "text": f"ok so {value} is the one"})
    looks = list(_LOOKALIKES)
    while len(looks) < n_lookalikes:
        k = len(looks) % 5
        if k == 0:  # a 16-digit number that fails the Luhn checksum
            body = "4" + "".join(str(int(d)) for d in r.integers(0, 10, size=14))
            bad = str((int(luhn_digit(body)) + 1 + int(r.integers(8))) % 10)
            looks.append(f"tracking number {body}{bad}")
        elif k == 1:  # an SSN shape with an area number the SSA never issues
            looks.append(f"ticket {['000', '666', '9' + str(int(r.integers(10, 99)))][int(r.integers(3))]}-"
                         f"{int(r.integers(10, 99))}-{int(r.integers(1000, 9999))}")
        elif k == 2:  # dotted numbers that are not IPv4 addresses
            looks.append(f"build {int(r.integers(256, 999))}.{int(r.integers(0, 9))}.{int(r.integers(0, 9))}."
                         f"{int(r.integers(0, 99))} released")
        elif k == 3:  # short numbers no numbering plan accepts
            looks.append(f"call extension {int(r.integers(100, 9999))} or dial {int(r.integers(10, 99))}")
        else:  # links without secrets
            looks.append(f"docs at https://example.com/guide?page={int(r.integers(1, 50))}&lang=en")
    return planted, looks[:n_lookalikes]


def pii_scores(planted: list[dict], lookalikes: list[str]) -> dict:
    """Recall: planted values fully covered by one finding. Precision: findings that are planted values, over
    all findings in the planted sentences' PII spans plus every finding on a look-alike."""
    hits = 0
    for item in planted:
        start = item["text"].index(item["value"])
        end = start + len(item["value"])
        hits += any(f.start <= start + 1 and f.end >= end - 1 for f in find_pii(item["text"]))
    false_pos = sum(bool(find_pii(t)) for t in lookalikes)
    return {"planted": len(planted), "lookalikes": len(lookalikes), "recall": hits / len(planted),
            "precision": hits / (hits + false_pos) if hits + false_pos else 1.0, "false_positives": false_pos,
            "missed": [p["text"] for p in planted
                       if not any(f.start <= p["text"].index(p["value"]) + 1 for f in find_pii(p["text"]))][:10],
            "flagged_lookalikes": [t for t in lookalikes if find_pii(t)][:10]}
