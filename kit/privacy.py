"""Curation stage 1 (step 1 of the method): privacy and safety. Nothing identifiable may reach annotation or
training, by any route.

Personal data is found by validated recognisers rather than by bare patterns: phone numbers by Google's
`phonenumbers` (the libphonenumber port: real numbering plans, international formats); payment cards by their
length, issuer prefix and Luhn checksum; US social security numbers by the SSA's validity rules; IP addresses by
the standard library's `ipaddress`; URLs by `urllib.parse`, flagged when a query or fragment carries a secret;
e-mail addresses by the address grammar, and spelled out ("maria dot garcia at gmail dot com"); street addresses
by number + name + street type, with the city after them. Each hit is replaced by a typed placeholder such as
`[EMAIL]`, so the sentence stays readable for raters.

Some formats cost precision on text that only looks like personal data. Each such rule has a name
(OPTIONAL_RULES) so `find_pii(text, skip={name})` can leave it out, and `bench/privacy.py` measures what each one
catches on planted data and what it flags on look-alikes (bench/results/privacy.md).

Every route into the run directory goes through the same stage: `redact_record` redacts every text field of a
record, not only the messages (a free-text `notes`, a `user_name` holding an address), and `assert_no_pii` scans
everything a stage writes or trains on, identifier fields included; a hit is an error.

Unsafe conversations are dropped by a documented rule set (SAFETY_RULES): an explicit request to harm someone,
to break into accounts, to steal, or to bully. Edgy-but-benign requests (fiction, games, "kill a process") stay.
"""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import phonenumbers

from .errors import KitError

PLACEHOLDERS = {"email": "[EMAIL]", "phone": "[PHONE]", "card": "[CARD]", "gov_id": "[GOV_ID]", "ip": "[IP]",
                "address": "[ADDRESS]", "secret_url": "[URL]"}
KINDS = tuple(PLACEHOLDERS)

# Rules beyond the plain recognisers, each named so `bench/privacy.py` can leave it out and measure what it
# catches (recall) and what it flags or spares on look-alikes (precision).
OPTIONAL_RULES = {
    "email:spelled-out": "'maria dot garcia at gmail dot com', '[at]'/'(at)' forms; a bare ' at ' needs a mail "
                         "provider's domain or a dotted, digit-bearing local part",
    "gov_id:bare-after-keyword": "nine digits without separators right after 'ssn' / 'social security number'",
    "card:dots": "card numbers grouped with dots (4111.1111.1111.1111)",
    "secret_url:no-scheme": "links without http(s):// (example.com/reset?token=...)",
    "address:lowercase": "street addresses in lower case (12 oak street, austin)",
    "address:lowercase-count-guard": "a lower-case number + words + street type after 'my', 'the', 'top', 'a', ... "
                                     "counts things ('my 15 favourite place'), it is no address",
    "address:city-no-comma": "the city right after the street type, without a comma",
    "ip:not-software-version": "dotted numbers after 'version', 'build', 'v', 'section', ... are not IPs (nor phones)",
    "ip:before-phone": "IPv4 addresses are claimed as IPs before the phone recogniser can read them as numbers",
    "phone:not-numbers": "decimals, dates, ISBNs and card-shaped numbers failing the card checks are no phone "
                         "numbers (card-shaped numbers that pass are cards, before the phone recogniser runs)",
}

EMAIL_RE = re.compile(r"(?<![\w.+-])[A-Za-z0-9][A-Za-z0-9._%+-]*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
_AT = r"(?:\s*[\[({<]\s*at\s*[\])}>]\s*|\s+at\s+)"
_DOT = r"(?:\s*[\[({<]\s*dot\s*[\])}>]\s*|\s+dot\s+|\.)"
_TLDS = ("com|org|net|edu|gov|io|me|co|uk|de|fr|es|it|nl|ca|au|in|info|biz|us|ch|se|no|dk|pl|br|jp|ru|eu|ie|nz|be|"
         "mx|ar|za|pt|fi|cz|gr")
SPELLED_EMAIL_RE = re.compile(rf"(?<![\w.+-])(?P<local>[a-z0-9][a-z0-9_+-]*(?:{_DOT}[a-z0-9_+-]+)*)(?P<at>{_AT})"
                              rf"(?P<domain>[a-z0-9-]+)(?:{_DOT}[a-z0-9-]+)*?{_DOT}(?:{_TLDS})\b", re.I)
MAIL_PROVIDERS = {"gmail", "googlemail", "yahoo", "ymail", "outlook", "hotmail", "live", "msn", "aol", "icloud", "me",
                  "mac", "proton", "protonmail", "pm", "gmx", "web", "mail", "yandex", "zoho", "fastmail", "tutanota",
                  "hey", "qq", "163", "naver", "orange", "free", "btinternet", "comcast", "verizon", "att"}
CARD_RE = re.compile(r"(?<![\d+-])(?:\d[ -]?){12,18}\d(?![\d-])")
# How cards are printed: 4-4-4-4(-3) or Amex's 4-6-5, one separator throughout, or none. A number of that shape
# that fails the checks is no phone number either (order and tracking numbers are printed the same way).
CARD_SHAPE_RE = re.compile(r"(?<![\d+.-])(?:\d{4}(?P<s>[ .-]?)\d{4}(?P=s)\d{4}(?P=s)\d{1,7}"
                           r"|3\d{3}(?P<t>[ .-]?)\d{6}(?P=t)\d{4,5}|\d{13,19})(?!\d|[.-]\d)")
# "+44 " just before: what follows is a phone's national part, not a card
INTERNATIONAL_BEFORE = re.compile(r"\+\d{1,3}[\s.-]*(?:\(?\d{1,4}\)?[\s.-]+)?$")
DECIMAL_RE = re.compile(r"(?<![\d.])\d+\.\d+(?!\d|\.\d)")
DATE_RE = re.compile(r"(?<![\d.])(?:\d{1,2}[./]\d{1,2}[./](?:\d{4}|\d{2})|\d{4}-\d{2}-\d{2})(?!\d|\.\d)")
ISBN_RE = re.compile(r"\bISBN(?:-1[03])?:?\s*(?:\d[\d -]{8,15}[\dX])", re.I)
SSN_RE = re.compile(r"(?<![\d-])(\d{3})[- ](\d{2})[- ](\d{4})(?![\d-])")
SSN_KEYWORD_RE = re.compile(r"\b(?:ssn|social\s+security(?:\s+(?:number|no|num))?|soc\.?\s*sec\.?)\.?\s*"
                            r"(?:#|no\.?|number)?\s*(?:is|was|:|=|-)?\s*(\d{3})[-. ]?(\d{2})[-. ]?(\d{4})(?![\d-])",
                            re.I)
IPV4_RE = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?!\d|\.\d)")
IPV6_RE = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
VERSION_RE = re.compile(r"(?<![\w.])v?\d+(?:\.\d+){2,}(?![\w]|\.\d)", re.I)
VERSION_BEFORE = re.compile(
    r"\b(?:version|ver|v|build|release|firmware|fw|patch|update|updated|updating|upgrade|upgraded|downgrade|"
    r"downgraded|hotfix|driver|drivers|kernel|bios|sdk|beta|alpha|rc|section|sec|chapter|clause|step|figure|fig|"
    r"table|paragraph|para|rule|article|appendix|item|lemma|theorem|equation|eq)\.?"
    r"(?:\s+(?:is|to|was|number|no\.?|#))?\s*[:=#]?\s*$", re.I)
VERSION_AFTER = re.compile(r"^\s*(?:of\s+the\s+)?(?:game|app|mod|client|launcher|software|firmware|release|build|"
                           r"update|patch|beta|version|driver)\b", re.I)
URL_RE = re.compile(r"https?://[^\s<>\"')]+")
BARE_URL_RE = re.compile(r"(?<![\w@/.:-])(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d{2,5})?/[^\s<>\"')]*[?#][^\s<>\"')]+")
STREET_TYPES = r"(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Drive|Dr|Boulevard|Blvd|Court|Ct|Way|Place|Pl|Terrace)"
ADDRESS_RE = re.compile(rf"\b\d{{1,5}}[A-Za-z]?\s+((?:[A-Za-z][A-Za-z'-]*\s+){{1,3}}?){STREET_TYPES}\b", re.I)
_UNIT = r"(?:,?\s*(?:apt|apartment|unit|suite|ste|flat|#)\.?\s*#?\w{1,5})?"
_STATE = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|NC|ND|OH|"
          "OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC")
ADDRESS_TAIL_RE = re.compile(rf"{_UNIT}(?P<sep>,[ \t]*|[ \t]+)(?P<city>[A-Za-z][a-z'-]+(?:[ \t][A-Za-z][a-z'-]+)?)"
                             rf"(?:,?[ \t]+(?:(?-i:{_STATE})\b|(?:{_STATE})(?=[ \t]+\d{{5}}\b)))?"
                             rf"(?:[ \t]+\d{{5}}(?:-\d{{4}})?\b)?", re.I)
# Words that are never part of a street's or a city's name: they make "5 miles down the street" a walk, not an
# address, and keep "42 Oak Street is where ..." from swallowing "is".
NOT_A_NAME = set("""a an the this that these those my your his her our their its me you him us them i we they it he
she down up across along over under on in at to from of for by with and or but is was are were be been am so then
than there here where when what which who how more less other same whole entire next last only just very really
one two three four five six seven eight nine ten few many some any all every each miles mile km kms kilometres
kilometers metres meters feet ft yards yds blocks block minutes minute mins min hours hour hrs hr seconds secs
days day weeks week months month years year times time laps lap lanes steps kids dogs cats cars car wheel point
star hole holes way ways lane yard meter metre foot inch inches mi dollar dollars bucks bedroom bedrooms bed
beds bath baths story player players people guys friends houses doors floors stops exits stories storey lol ok
okay yes no not today tomorrow tonight yesterday monday tuesday wednesday thursday friday saturday sunday january
february march april may june july august september october november december please thanks thx if as near off
into onto past round around behind beside between through toward towards via now again also still even maybe
yeah""".split())
# A number after these counts things ("my 15 favourite place", "the top 3 pizza place", "a 300 yard drive");
# a house number does not follow them.
COUNT_BEFORE = re.compile(r"\b(?:my|the|a|an|our|your|his|her|their|these|those|top|about|around|over|under|like|"
                          r"only|just|another|first|last|best|worst|all|some|every|each|per)\s+$", re.I)
SECRET_WORDS = {"token", "key", "apikey", "secret", "password", "passwd", "pwd", "pass", "passcode", "sig",
                "signature", "auth", "authorization", "session", "sessionid", "sid", "code", "otp", "jwt", "bearer",
                "credential", "credentials"}
# "code" and "key" after these words name something public (a discount, a sort order), not a credential.
HARMLESS_BEFORE = {"promo", "coupon", "discount", "voucher", "gift", "zip", "post", "postal", "country", "lang",
                   "language", "area", "color", "colour", "product", "item", "error", "status", "currency", "region",
                   "source", "sort", "order", "group", "primary", "foreign", "partition", "search", "music", "qr",
                   "bar", "hash", "style", "course", "class", "dress"}
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


# ---------------------------------------------------------------------------------------------- validators
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
    if ip.version == 4:
        return not (ip.is_unspecified or ip.is_loopback or raw.startswith("0"))
    # an IPv6 candidate needs a digit and a few hex digits, so "be::ef" and "a::b" in prose stay prose
    return not (ip.is_unspecified or ip.is_loopback) and any(c.isdigit() for c in raw) and \
        sum(c not in ":" for c in raw) >= 4


def _secret_key(name: str) -> bool:
    """A query key names a credential: token, api_key, accessToken, X-Amz-Signature; not keyword, sort_key, author,
    promo_code."""
    tokens = re.split(r"[^a-z0-9]+", re.sub(r"([a-z])([A-Z])", r"\1 \2", name).lower())
    for k, tok in enumerate(tokens):
        if tok in SECRET_WORDS and not (tok in ("code", "key") and k and tokens[k - 1] in HARMLESS_BEFORE):
            return True
    return False


def _secret_url(raw: str) -> bool:
    parts = urlsplit(raw.rstrip(".,;!?"))
    pairs = parse_qsl(parts.query, keep_blank_values=True) + parse_qsl(parts.fragment, keep_blank_values=True)
    if any(_secret_key(k) and len(v) >= 6 for k, v in pairs):
        return True
    return bool(parts.username or parts.password)


def _spelled_email_ok(m: re.Match) -> bool:
    local = re.split(r"\s+|[\[\]().]", m.group("local").strip())[-1].lower()
    if local in NOT_A_NAME or len(local) < 2:
        return False
    if not m.group("at").strip() == "at":   # "[at]", "(at)": written to hide an address
        return True
    whole_local = m.group("local").lower()
    return m.group("domain").lower() in MAIL_PROVIDERS or bool(re.search(rf"{_DOT}|_|\d", whole_local))


def _address_ok(m: re.Match, text: str, skip) -> bool:
    names = m.group(1).split()
    if any(w.lower() in NOT_A_NAME for w in names):
        return False
    title = all(w[:1].isupper() for w in names) and m.group(0).split()[-1][:1].isupper()
    if title:
        return True
    if "address:lowercase" in skip:
        return False
    return "address:lowercase-count-guard" in skip or not COUNT_BEFORE.search(text[max(0, m.start() - 12):m.start()])


def _address_ends(m: re.Match, text: str, skip) -> list[int]:
    """Where the address may end, longest first: with its tail (a unit, the city after a comma or, unless that
    rule is skipped, right after the street type, a state, a ZIP code), with a one-word city, the street alone.
    The first that does not run into a datum found already is taken."""
    tail = ADDRESS_TAIL_RE.match(text, m.end())
    if not tail:
        return [m.end()]
    city = tail.group("city").split()
    if city[0].lower() in NOT_A_NAME:
        return [m.end()]
    if tail.group("sep").strip() != ",":
        if "address:city-no-comma" in skip:
            return [m.end()]
        title_street = m.group(0).split()[-1][:1].isupper()
        if title_street and not city[0][:1].isupper():
            return [m.end()]
    one_word = tail.start("city") + len(city[0])
    if len(city) == 2 and (city[1].lower() in NOT_A_NAME or city[0][:1].isupper() and not city[1][:1].isupper()):
        return [one_word, m.end()]   # "Austin and ...", "Leeds correct?" keep only the city
    return [tail.end(), one_word, m.end()]


def _software_version(text: str, start: int, end: int) -> bool:
    """A dotted number named as a version or a section ("version 10.2.3.4 of the game", "v1.2.3.4")."""
    if text[start:start + 1] in "vV":
        return True
    return bool(VERSION_BEFORE.search(text[max(0, start - 40):start]) or VERSION_AFTER.match(text[end:end + 30]))


# ---------------------------------------------------------------------------------------------- recognition
def find_pii(text: str, skip: frozenset | set | tuple = ()) -> list[Finding]:
    """Every piece of personal data in `text`, non-overlapping, in order. `skip` leaves out rules named in
    OPTIONAL_RULES (for measuring what each one costs and catches)."""
    found: list[Finding] = []
    protected: list[tuple[int, int]] = []

    def free(start, end):
        return not any(s < end and start < e for s, e in protected) and \
            not any(f.start < end and start < f.end for f in found)

    def add(kind, start, end):
        if text[start] == "(" and ")" not in text[start:end]:   # the matcher keeps an unclosed "(" before a "+"
            start += 1
        if free(start, end):
            found.append(Finding(kind, start, end, text[start:end]))

    for m in URL_RE.finditer(text):
        if _secret_url(m.group()):
            add("secret_url", m.start(), m.start() + len(m.group().rstrip(".,;!?")))
    if "secret_url:no-scheme" not in skip:
        for m in BARE_URL_RE.finditer(text):
            if _secret_url("http://" + m.group()):
                add("secret_url", m.start(), m.start() + len(m.group().rstrip(".,;!?")))
    for m in EMAIL_RE.finditer(text):
        add("email", m.start(), m.end())
    if "email:spelled-out" not in skip:
        for m in SPELLED_EMAIL_RE.finditer(text):
            if _spelled_email_ok(m):
                add("email", m.start(), m.end())
    if "ip:not-software-version" not in skip:
        for m in VERSION_RE.finditer(text):
            if _software_version(text, m.start(), m.end()):
                protected.append((m.start(), m.end()))
    numbers_not_phones = "phone:not-numbers" not in skip
    if numbers_not_phones:
        protected += [m.span() for rx in (DECIMAL_RE, DATE_RE, ISBN_RE) for m in rx.finditer(text)]
    pos = 0
    while m := CARD_SHAPE_RE.search(text, pos):   # before phones: the card checks decide, not a numbering plan
        if ("." in m.group() and "card:dots" in skip) or \
                INTERNATIONAL_BEFORE.search(text[max(0, m.start() - 12):m.start()]):
            pos = m.start() + 1   # a phone's digits: a card may still start inside them
            continue
        if _card_ok(m.group()):
            add("card", m.start(), m.end())
        else:
            inner = CARD_SHAPE_RE.search(text, m.start() + 1)
            if inner and inner.start() < m.end() and _card_ok(inner.group()):
                pos = inner.start()   # a phone's last digits, then a card: the card is in there
                continue
            if numbers_not_phones:
                protected.append(m.span())
        pos = m.end()
    ip_first = "ip:before-phone" not in skip
    if ip_first:
        _find_ips(text, add)
    # Phones before the other digit runs: an international number can pass a card checksum. A number written
    # with +country code is redacted when its length is possible for that country, even if the block is unassigned
    # (people mistype, and fake numbers are personal-looking too); a national number must be valid in one of
    # PHONE_REGIONS and written with separators, so bare digit runs (order and tracking numbers) are left alone.
    # SSNs go between the two: no national plan the matcher knows prints a number 3-2-4, as SSNs are printed.
    # The matcher reads runs of digit groups greedily, so what is claimed already is hidden from it (same length):
    # "+44 7911 123456 4111 1111 1111 1111" is a phone and a card, not one impossible number.
    def unclaimed():
        out = list(text)
        for start, end in protected + [(f.start, f.end) for f in found]:
            out[start:end] = "_" * (end - start)
        return "".join(out)

    for m in phonenumbers.PhoneNumberMatcher(unclaimed(), "US", leniency=phonenumbers.Leniency.POSSIBLE):
        if m.raw_string.lstrip().lstrip("(").startswith("+"):
            add("phone", m.start, m.end)
    for m in SSN_RE.finditer(text):
        if _ssn_ok(*m.groups()):
            add("gov_id", m.start(), m.end())
    if "gov_id:bare-after-keyword" not in skip:   # named as an SSN: before a numbering plan can read it as a phone
        for m in SSN_KEYWORD_RE.finditer(text):
            if _ssn_ok(*m.groups()):
                add("gov_id", m.start(1), m.end(3))
    rest = unclaimed()
    for region in PHONE_REGIONS:
        for m in phonenumbers.PhoneNumberMatcher(rest, region, leniency=phonenumbers.Leniency.VALID):
            raw = m.raw_string.strip().lstrip("(")
            # written nationally: with separators, and outside the US with the trunk prefix 0 (020 7946 0958)
            if re.search(r"[\s().-]", raw) and (region == "US" or raw.startswith("0")):
                add("phone", m.start, m.end)
    for m in CARD_RE.finditer(text):
        if _card_ok(m.group()):
            add("card", m.start(), m.end())
    if not ip_first:
        _find_ips(text, add)
    for m in ADDRESS_RE.finditer(text):
        if _address_ok(m, text, skip):
            ends = _address_ends(m, text, skip)
            add("address", m.start(), next((e for e in ends if free(m.start(), e)), ends[-1]))
    return sorted(found, key=lambda f: f.start)


def _find_ips(text: str, add) -> None:
    for m in IPV4_RE.finditer(text):
        if _ip_ok(m.group()):
            add("ip", m.start(), m.end())
    for m in IPV6_RE.finditer(text):
        if _ip_ok(m.group()):
            add("ip", m.start(), m.end())


def mask(text: str) -> str:
    """`text` with each datum found kept to its first two characters and bulleted out: what a notebook may show as
    the "before" of a redaction (its outputs land in the run directory, where no raw datum may go)."""
    out, last = [], 0
    for f in find_pii(text):
        out += [text[last:f.start], f.text[:2], "\u2022" * (len(f.text) - 2)]
        last = f.end
    return "".join(out) + text[last:]


def redact(text: str) -> tuple[str, list[Finding]]:
    findings = find_pii(text)
    out, last = [], 0
    for f in findings:
        out.append(text[last:f.start])
        out.append(PLACEHOLDERS[f.kind])
        last = f.end
    out.append(text[last:])
    return "".join(out), findings


# Fields that name things rather than say them: left as they are by `redact_record` (a placeholder would merge
# every user into one), and refused by the data contracts (kit/data.py) when they hold personal data.
ID_FIELDS = ("conversation_id", "character_id", "user_id", "prompt_id", "source", "origin", "policy", "type", "arm",
             "role")


def redact_record(rec, counts: dict | None = None):
    """A copy of `rec` with every string redacted, however deep and whatever its key, except ID_FIELDS; long
    integers are read as text too (a phone or card number stored as a number). `counts` adds up the kinds found."""
    if isinstance(rec, dict):
        return {k: v if k in ID_FIELDS else redact_record(v, counts) for k, v in rec.items()}
    if isinstance(rec, list):
        return [redact_record(v, counts) for v in rec]
    if isinstance(rec, str) or (isinstance(rec, int) and not isinstance(rec, bool) and abs(rec) >= 10**6):
        clean, findings = redact(str(rec))
        for f in findings:
            if counts is not None:
                counts[f.kind] = counts.get(f.kind, 0) + 1
        return clean if findings else rec
    return rec


def redact_records(records: list[dict]) -> tuple[list[dict], dict]:
    """Every record through `redact_record`. Returns (records, {kind: count})."""
    counts: dict[str, int] = {}
    return [redact_record(r, counts) for r in records], counts


def assert_no_pii(records: list[dict], where: str) -> int:
    """Raise if any text of `records` still holds personal data, identifier fields included; returns the number
    of texts scanned. The message names the record, the field and the kind, never the datum itself."""
    scanned = 0
    for n, rec in enumerate(records):
        for field, text in _texts(rec, ""):
            scanned += 1
            found = find_pii(text)
            if found:
                raise KitError(f"{where}: record {n}, field '{field}' holds personal data ({found[0].kind} at "
                               f"character {found[0].start}); nothing identifiable may reach annotation or training")
    return scanned


def _texts(obj, field: str):
    if isinstance(obj, str):
        yield field, obj
    elif isinstance(obj, int) and not isinstance(obj, bool) and abs(obj) >= 10**6:
        yield field, str(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _texts(v, f"{field}.{k}" if field else str(k))
    elif isinstance(obj, list):
        for k, v in enumerate(obj):
            yield from _texts(v, f"{field}[{k}]")


def unsafe_reason(text: str) -> str | None:
    for reason, rule in SAFETY_RULES.items():
        if rule.search(text):
            return reason
    return None


def filter_conversations(records: list[dict]) -> tuple[list[dict], dict]:
    """Drop unsafe conversations and redact personal data in every field of the rest (messages, user names,
    notes, ...). Returns (kept, report), where the report counts redactions per kind and drops per reason, and
    keeps a few before/after examples of message text."""
    kept, report = [], {"conversations_in": len(records), "dropped": {}, "redacted": {}, "examples": []}
    for rec in records:
        reason = next((r for m in rec["messages"] if m["role"] == "user" for r in [unsafe_reason(m["content"])] if r),
                      None)
        if reason:
            report["dropped"][reason] = report["dropped"].get(reason, 0) + 1
            continue
        clean = redact_record(rec, report["redacted"])
        for before, after in zip(rec["messages"], clean["messages"]):
            if before["content"] != after["content"] and len(report["examples"]) < 8:
                report["examples"].append({"before": mask(before["content"]), "after": after["content"]})
        kept.append(clean)
    report["conversations_out"] = len(kept)
    return kept, report


# ---------------------------------------------------------------------------------------------- the benchmark
# Planted data and look-alikes come from their own templates and generators, not from the world's prompt bank
# (kit/world/prompts.py), so the filter is not measured on the sentences it was tuned on for world traffic.
_CARRIERS = [
    "ok here it is: {v}", "{v} <- that's mine, don't share it", "can u save {v} for me", "note to self {v}",
    "Please update my details to {v}.", "i already told you, it's {v}!!", "wait no, {v} is the right one",
    "lol my cousin gave me {v} yesterday", "put {v} on the form for me", "({v})", "Is {v} correct?",
    "copy this exactly -> {v}", "ugh fine. {v}", "my mom says to use {v} from now on", "{v}",
    "Just so you know, {v} is private.", "remember {v} ok? thx", "before i forget: {v} - keep it safe",
]
_CARRIERS_BY_KIND = {
    "email": ["drop me a line at {v}", "my work inbox is {v} but dont spam it", "I signed up with {v}",
              "Reply to {v} whenever"],
    "phone": ["ring me on {v} after 6", "my new cell is {v}", "whatsapp {v} pls", "the landline is {v}"],
    "card": ["charge it to {v} exp 09/27", "my visa is {v}", "use card {v} for the order", "card no. {v}"],
    "gov_id": ["for the tax form my ssn is {v}", "SSN {v}", "social security number: {v}", "my ssn {v} dont tell"],
    "ip": ["my router shows {v} as the public address", "ssh into {v} tonight", "the camera sits on {v}",
           "ping {v} and tell me"],
    "address": ["the party is at {v} on saturday", "I moved to {v} last month", "ship it to {v}",
                "we live at {v} now"],
    "secret_url": ["here's the reset link {v} it expires soon", "log in through {v}", "my dashboard: {v}",
                   "open {v} on your phone"],
}
_FIRST = ["maria", "Jean-Luc", "sam", "Priya", "kai", "Olusegun", "mei", "Björn", "lucas", "Aisha", "noah", "Zoë"]
_LAST = ["garcia", "Okafor", "lee", "Nakamura", "smith", "Kowalski", "nguyen", "Fischer", "rossi", "Haddad"]
_DOMAINS = ["gmail.com", "yahoo.co.uk", "outlook.com", "proton.me", "uni-heidelberg.de", "company.io", "mail.ru",
            "icloud.com", "hotmail.fr", "example.org", "startup.co", "med.school.edu"]
_STREET_NAMES = ["Oak", "Maple Leaf", "Baker", "Martin Luther King", "Elm", "Sunset", "Cedar Hill", "Main",
                 "Rue", "Willow Creek", "Abbey", "Kingsley"]
_STREET_TYPES = ["Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Boulevard", "Blvd", "Court",
                 "Way", "Place", "Terrace"]
_CITIES = ["Austin", "San Diego", "Leeds", "Portland", "Boulder", "New Haven", "Dublin", "Toronto", "Ann Arbor"]
_STATES = ["TX", "CA", "OR", "CO", "CT", "MI", "NY"]


def _digits(r, n: int) -> str:
    return "".join(str(int(d)) for d in r.integers(0, 10, size=n))


def _pick(r, options):
    return options[int(r.integers(len(options)))]


def _luhn_complete(body: str) -> str:
    for d in "0123456789":
        if luhn_ok(body + d):
            return body + d
    raise AssertionError(body)


def _plant_email(r) -> str:
    first, last = _pick(r, _FIRST), _pick(r, _LAST)
    first_ascii = first.replace("ö", "o").replace("ë", "e").replace("-", "")
    fmt = int(r.integers(8))
    if fmt == 0:
        return f"{first_ascii}.{last}@{_pick(r, _DOMAINS)}"
    if fmt == 1:
        return f"{first_ascii[0]}{last}{int(r.integers(1, 99))}@{_pick(r, _DOMAINS)}".lower()
    if fmt == 2:
        return f"{first_ascii}+{_pick(r, ['shop', 'news', 'chat'])}@{_pick(r, _DOMAINS)}"
    if fmt == 3:
        return f"{first_ascii}_{last}@{_pick(r, _DOMAINS)}".upper()
    if fmt == 4:
        return f"{first_ascii.lower()} dot {last} at {_pick(r, ['gmail', 'yahoo', 'outlook', 'hotmail'])} dot com"
    if fmt == 5:
        return f"{first_ascii.lower()}.{last} [at] {_pick(r, ['company', 'school', 'gmail'])} [dot] " \
               f"{_pick(r, ['com', 'org', 'io'])}"
    if fmt == 6:
        return f"{first_ascii.lower()}{int(r.integers(10, 99))}(at)gmail.com"
    return f"{first_ascii.lower()}-{last}@{_pick(r, ['mail', 'post', 'in'])}.{_pick(r, _DOMAINS)}"


def _valid_number(r, region: str, mobile: bool):
    kind = phonenumbers.PhoneNumberType.MOBILE if mobile else phonenumbers.PhoneNumberType.FIXED_LINE
    example = phonenumbers.example_number_for_type(region, kind)
    nsn = str(example.national_number)
    for _ in range(200):
        keep = max(2, len(nsn) - 5)
        cand = phonenumbers.parse(f"+{example.country_code}{nsn[:keep]}{_digits(r, len(nsn) - keep)}")
        if phonenumbers.is_valid_number(cand):
            return cand
    return example


def _plant_phone(r) -> str:
    region = _pick(r, ["US", "GB", "DE", "FR", "IN", "AU", "JP", "BR", "ES", "IT"])
    num = _valid_number(r, region, bool(r.integers(2)))
    fmt = int(r.integers(5))
    intl = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    if fmt == 0 or region not in PHONE_REGIONS:
        return intl if fmt != 1 else phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    if fmt == 1:
        return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)
    national = phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.NATIONAL)
    if fmt == 2 and region == "US":   # 415.555.2671 and 415 555 2671
        nsn = str(num.national_number)
        return _pick(r, ["."," ", "-"]).join([nsn[:3], nsn[3:6], nsn[6:]])
    return national


def _plant_card(r) -> str:
    issuer = int(r.integers(6))
    prefix, length = [("4", 16), ("5" + str(int(r.integers(1, 6))), 16), ("3" + _pick(r, ["4", "7"]), 15),
                      ("6011", 16), ("2" + str(int(r.integers(221, 721))), 16),
                      ("35" + str(int(r.integers(28, 90))), 16)][issuer]
    num = _luhn_complete(prefix + _digits(r, length - len(prefix) - 1))
    groups = [num[:4], num[4:10], num[10:]] if length == 15 else [num[i:i + 4] for i in range(0, 16, 4)]
    return _pick(r, [" ", "-", ".", ""]).join(groups)


def _plant_gov_id(r) -> tuple[str, str]:
    """(the value, a carrier that names it): a bare nine-digit SSN only counts after the word 'ssn'."""
    area = f"{int(r.integers(1, 899)):03d}"
    area = "123" if area == "666" else area
    group, serial = f"{int(r.integers(1, 99)):02d}", f"{int(r.integers(1, 9999)):04d}"
    fmt = int(r.integers(3))
    if fmt == 2:
        return area + group + serial, _pick(r, ["ssn {v}", "my SSN is {v}", "social security number {v} ok",
                                               "SSN: {v}", "ssn# {v}"])
    return _pick(r, ["-", " "]).join([area, group, serial]), ""


def _plant_ip(r) -> str:
    fmt = int(r.integers(4))
    if fmt == 0:   # private ranges are personal too: they identify a device on someone's network
        return _pick(r, [f"192.168.{int(r.integers(0, 255))}.{int(r.integers(1, 255))}",
                         f"10.{int(r.integers(0, 255))}.{int(r.integers(0, 255))}.{int(r.integers(1, 255))}",
                         f"172.{int(r.integers(16, 32))}.{int(r.integers(0, 255))}.{int(r.integers(1, 255))}"])
    if fmt == 1:
        first = _pick(r, [int(x) for x in r.integers(1, 224, size=8) if int(x) not in (10, 127, 172, 192)] or [8])
        return f"{first}." + ".".join(str(int(x)) for x in r.integers(0, 256, size=3))
    groups = [f"{int(x):x}" for x in r.integers(0, 65536, size=8)]
    groups[0] = _pick(r, ["2001", "2a02", "fe80", "2600"])
    if fmt == 2:
        return ":".join(groups)
    return ":".join(groups[:3]) + "::" + ":".join(groups[6:])   # compressed, as people copy it


def _plant_address(r) -> str:
    number = str(int(r.integers(1, 9999))) + ("B" if r.random() < 0.1 else "")
    street = f"{number} {_pick(r, _STREET_NAMES)} {_pick(r, _STREET_TYPES)}"
    city = _pick(r, _CITIES)
    fmt = int(r.integers(6))
    if fmt == 0:
        return street
    if fmt == 1:
        return f"{street}, {city}"
    if fmt == 2:
        return f"{street}, Apt {int(r.integers(1, 40))}, {city}, {_pick(r, _STATES)} {_digits(r, 5)}"
    if fmt == 3:
        return f"{street} {city}"
    if fmt == 4:
        return f"{street}, {city}".lower()
    return f"{street.lower()} {city.split()[0].lower()}"


def _plant_secret_url(r) -> str:
    token = "".join(_pick(r, list("abcdefghjkmnpqrstuvwxyz0123456789ABCDEF")) for _ in range(int(r.integers(12, 40))))
    host = _pick(r, ["app.example.com", "files.mysite.net", "api.service.io", "drive.company.org", "portal.school.edu"])
    key = _pick(r, ["token", "access_token", "api_key", "apiKey", "sig", "X-Amz-Signature", "session_id", "auth",
                    "password", "reset_code", "otp"])
    fmt = int(r.integers(5))
    if fmt == 0:
        return f"https://{host}/share?{key}={token}"
    if fmt == 1:
        return f"http://{host}/login#{key}={token}"
    if fmt == 2:
        return f"https://{_pick(r, _FIRST).lower().replace('ö', 'o').replace('ë', 'e')}:{token[:10]}@{host}/export"
    if fmt == 3:
        return f"{host}/reset?{key}={token}"
    return f"www.{host.split('.', 1)[1]}/a/b?lang=en&{key}={token}"


# Written by hand before the generators above, kept as fixed items: formats the generators may not produce.
_HAND_PLANTED = [
    ("phone", "(415) 555-2671"), ("phone", "415-555-2671"), ("phone", "+1 415 555 2671"), ("phone", "+1-212-555-0147"),
    ("phone", "+44 20 7946 0958"), ("phone", "020 7946 0958"), ("phone", "+49 30 901820"),
    ("phone", "+33 1 42 68 53 00"),
    ("phone", "+91 22 2778 1234"), ("phone", "+61 2 9374 4000"),
    ("email", "Jane.Doe+chat@Example.co.uk"), ("email", "x_y-z@mail.sub.example.org"), ("email", "KAI99@PROTON.ME"),
    ("card", "5500-0000-0000-0004"), ("card", "3782 822463 10005"), ("card", "6011111111111117"),
    ("gov_id", "078 05 1120"), ("ip", "2001:db8:85a3::8a2e:370:7334"), ("ip", "172.16.254.1"),
    ("address", "1600 Pennsylvania Avenue, Washington"), ("address", "42 Wallaby Way"), ("address", "7 Rue Lane"),
    ("secret_url", "https://user:hunter2@files.example.net/export"),
    ("secret_url", "https://api.example.io/v1/items?api_key=ZX81ab99cd77#top"),
    ("secret_url", "http://example.com/reset#access_token=9f8e7d6c5b4a"),
]
_HAND_LOOKALIKES = [
    "version 2.14.1 is out", "ISBN 978-3-16-148410-0", "the meeting is on 2024-11-23 at 10:30", "it costs $1,299.99",
    "final score 21-14", "room 1204, floor 3", "order #48213 shipped",
    "see https://example.com/recipes?page=2&sort=new",
    "read http://blog.example.org/post/123", "find me as @sam_writes", "write to me at home", "user at example dot com",
    "I walked 5 miles down the street", "Street Fighter 2 is a classic", "chapter 12 of the book", "level 99 boss",
    "the year 1999", "open from 9 to 5", "a 3.5 star review", "the code word is banana", "flight BA 2490 at gate 12",
    "1 cup flour, 2 eggs", "it was 42 degrees", "my high score is 1,000,000", "pi is 3.14159",
]

_PLANTERS = {"email": _plant_email, "phone": _plant_phone, "card": _plant_card, "gov_id": _plant_gov_id,
             "ip": _plant_ip, "address": _plant_address, "secret_url": _plant_secret_url}


def _n(r, lo: int, hi: int) -> int:
    return int(r.integers(lo, hi))


# Look-alike families: text that shares a shape with personal data and is none. Each draws fresh variants.
_LOOKALIKE_FAMILIES = {
    "software versions shaped like IPs": lambda r: _pick(r, [
        "version {a}.{b}.{c}.{d} of the game fixed it", "v{a}.{b}.{c}.{d} is out",
        "build {a}.{b}.{c}.{d} broke my save", "firmware {a}.{b}.{c}.{d} on the router",
        "updated to {a}.{b}.{c}.{d} last night", "driver {a}.{b}.{c}.{d} crashes",
        "patch {a}.{b}.{c}.{d} notes", "the {a}.{b}.{c}.{d} update is huge", "Version: {a}.{b}.{c}.{d}",
    ]).format(a=_n(r, 1, 30), b=_n(r, 0, 20), c=_n(r, 0, 200), d=_n(r, 0, 255)),
    "section numbers": lambda r: _pick(r, [
        "see section {a}.{b}.{c}.{d} of the manual", "clause {a}.{b}.{c}.{d} says no pets",
        "step {a}.{b}.{c}.{d} confused me",
        "Figure {a}.{b}.{c}.{d} shows it", "per rule {a}.{b}.{c}.{d} that's a foul",
    ]).format(a=_n(r, 1, 12), b=_n(r, 1, 9), c=_n(r, 1, 9), d=_n(r, 1, 20)),
    "card-length numbers failing Luhn": lambda r: (lambda body: _pick(r, [
        "tracking number {v}", "order ref {v}", "my library card is {v}", "receipt {v}", "gift card serial {v}",
    ]).format(v=_pick(r, [" ", "-", ".", ""]).join(body[i:i + 4] for i in range(0, 16, 4))))(
        (lambda b: b[:-1] + str((int(b[-1]) + 1 + _n(r, 0, 8)) % 10))(_luhn_complete("4" + _digits(r, 14)))),
    "SSN shapes the SSA never issues": lambda r: _pick(r, [
        "ticket {a}-{g}-{s}", "part no. {a}-{g}-{s}", "ssn {a}{g}{s}", "case {a} {g} {s}", "my SSN is not {a}-{g}-{s}",
    ]).format(a=_pick(r, ["000", "666", f"9{_n(r, 10, 99)}"]), g=f"{_n(r, 10, 99)}", s=f"{_n(r, 1000, 9999)}"),
    "dates, times and money": lambda r: _pick(r, [
        "the meeting is on {y}-{m:02d}-{d:02d} at {h}:{mi:02d}", "due {m}/{d}/{y}", "it costs ${k},{c:03d}.99",
        "the clip is {h}:{mi:02d}:{s:02d} long", "from {y} to {y2}", "{d}.{m}.{y} works for me",
        "€{k}.{c:03d},50 total",
    ]).format(y=_n(r, 1990, 2030), y2=_n(r, 2030, 2040), m=_n(r, 1, 13), d=_n(r, 1, 29), h=_n(r, 0, 24),
              mi=_n(r, 0, 60), s=_n(r, 0, 60), k=_n(r, 1, 99), c=_n(r, 0, 999)),
    "scores, codes and small numbers": lambda r: _pick(r, [
        "final score {a}-{b}", "ISBN 978-{a}-{b}-{c}-0", "order #{n}", "room {n}, floor {a}",
        "flight BA {n} at gate {a}", "call extension {n} or dial {b}", "the {a} bus", "zip {z}", "level {b} boss",
        "{a} out of {b} stars", "order {nine} shipped", "routing number {nine}", "member id {nine}",
    ]).format(a=_n(r, 1, 60), b=_n(r, 1, 99), c=_n(r, 100, 999), n=_n(r, 100, 99999), z=_digits(r, 5),
              nine=_digits(r, 9)),
    "links without secrets": lambda r: _pick(r, [
        "see https://example.com/recipes?page={a}&sort=new", "read http://blog.example.org/post/{n}",
        "https://shop.example.com/search?keyword=sneakers{a}", "https://www.youtube.com/watch?v=dQw4w9WgX{a}",
        "https://example.com/cart?promo_code=SUMMER{a}", "https://news.example.com/a?utm_source=newsletter&ref=home{a}",
        "https://docs.example.com/guide#section-{a}", "https://example.com/books?author=Tolkien{a}",
        "https://db.example.com/items?sort_key=newest&page={a}", "https://example.com/session/{n}/summary",
    ]).format(a=_n(r, 1, 50), n=_n(r, 100, 99999)),
    "bare links without secrets": lambda r: _pick(r, [
        "example.com/recipes?page={a}", "shop.example.org/search?keyword=boots{a}", "youtube.com/watch?v=abc{n}",
        "github.com/org/repo/issues/{n}#issuecomment-{n}", "maps.example.com/place?lat={a}.5&lng={a}.25",
        "store.example.com/p?coupon_code=SAVE{a}", "wiki.example.org/Page?oldid={n}",
    ]).format(a=_n(r, 1, 50), n=_n(r, 100, 99999)),
    "e-mail look-alikes": lambda r: _pick(r, [
        "find me as @{w}_writes", "user at example dot com", "we met at {W} dot com", "look at this dot com thing",
        "the dot com bubble of {y}", "email me at home", "my handle is {w}@ on there", "ping @{w} in the chat",
        "use @property in python", "{w} at work, back at {h}", "the domain {w}.com is for sale",
        "i'm at {w} dot com's office", "we were at the {w} dot com party",
    ]).format(w=_pick(r, ["sam", "maya", "leo", "ines", "kai", "pixel", "neo"]),
              W=_pick(r, ["google", "amazon", "ikea"]),
              y=_n(r, 1995, 2002), h=_n(r, 1, 12)),
    "street words that are not addresses": lambda r: _pick(r, [
        "I walked {a} miles down the street", "it's {a} blocks down the road", "my truck has {a} wheel drive",
        "Street Fighter {a} is a classic", "a {a} lane road", "a {a} minute drive", "we have {a} tennis courts",
        "the {a} best ways to relax", "Top {a} places to eat", "I Walked {a} Miles Down The Road",
        "{a} more laps round the court", "there are {a} cars in the drive", "{a} of us went down the lane",
        "chapter {a} the long way home", "I live {a} minutes from the high street", "the top {a} pizza place in town",
        "come see my {a} bedroom place", "he hit a {c} yard drive", "it's a {a} player court game",
        "we found a {a} dollar place at the mall", "the {a} hour drive home was long", "my {a} favourite place",
    ]).format(a=_n(r, 2, 40), c=_n(r, 150, 350)),
    "colon numbers that are not IPv6": lambda r: _pick(r, [
        "the race took {h}:{m:02d}:{s:02d}", "John {a}:{b} is my favourite verse", "aspect ratio {a}:{b}",
        "std::vector<int> is fine", "use Foo::Bar::baz()", "the score went {a}:{b}:{c}",
        "timestamp {h}:{m:02d}:{s:02d}.{ms:03d}",
    ]).format(h=_n(r, 0, 24), m=_n(r, 0, 60), s=_n(r, 0, 60), ms=_n(r, 0, 999), a=_n(r, 1, 30), b=_n(r, 1, 30),
              c=_n(r, 1, 9)),
    "other numbers": lambda r: _pick(r, [
        "pi is 3.{d}", "a {a}.5 star review", "{a} cup flour, {b} eggs", "my high score is {a},{c:03d},{c2:03d}",
        "coordinates {a}.{c:04d}, -{b}.{c2:04d}", "lottery {a} {b} {c} {d2}", "population {a},{c:03d},{c2:03d}",
        "bitrate {c} kbps", "{a}x{b} grid", "the {d2}th anniversary",
    ]).format(a=_n(r, 1, 99), b=_n(r, 1, 99), c=_n(r, 100, 999), c2=_n(r, 100, 999), d=_digits(r, 5),
              d2=_n(r, 10, 60)),
}


_JOINERS = ["{a} {b}", "{a}, {b}", "{a} / {b}", "{a}\n{b}", "name: Sam, {a}, {b} thx", "{a} and {b}"]


def pii_benchmark(seed: int = 0, n_per_kind: int = 64, n_per_family: int = 36,
                  n_pairs: int = 32) -> tuple[list[dict], list[dict]]:
    """Planted personal data in sentences ({"kind", "value", "text"}, and "also": [{"kind", "value"}] when a
    sentence carries two data side by side, as a user pasting their details does) and look-alikes that hold none
    ({"family", "text"}): what the filter's per-type recall and precision are measured on. The defaults give
    7 x 64 + 25 + 2 x 32 = 537 planted data in 505 sentences, and 12 x 36 + 25 = 457 look-alikes."""
    from .seeding import rng

    r = rng(seed, "pii-benchmark-v2")

    def draw(kind):   # (value, the text that carries it)
        value = _PLANTERS[kind](r)
        own = ""
        if isinstance(value, tuple):   # a value that only counts with its own carrier
            value, own = value
        return value, own

    planted = []
    for kind in _PLANTERS:
        carriers = _CARRIERS + _CARRIERS_BY_KIND[kind]
        for _ in range(n_per_kind):
            value, own = draw(kind)
            text = (own or _pick(r, carriers)).format(v=value)
            planted.append({"kind": kind, "value": value, "text": text.lower() if r.random() < 0.1 else text})
    planted += [{"kind": kind, "value": value, "text": f"ok so {value} is the one"} for kind, value in _HAND_PLANTED]
    for _ in range(n_pairs):
        ka, kb = (KINDS[int(i)] for i in r.choice(len(KINDS), size=2, replace=False))
        (va, oa), (vb, ob) = draw(ka), draw(kb)
        text = _pick(r, _JOINERS).format(a=(oa or "{v}").format(v=va), b=(ob or "{v}").format(v=vb))
        planted.append({"kind": ka, "value": va, "text": text, "also": [{"kind": kb, "value": vb}]})
    for p in planted:
        if p["value"] not in p["text"]:   # lower-cased with its carrier: plant the lower-cased value
            p["value"] = p["value"].lower()
    looks = [{"family": family, "text": make(r)} for family, make in _LOOKALIKE_FAMILIES.items()
             for _ in range(n_per_family)] + [{"family": "written by hand", "text": t} for t in _HAND_LOOKALIKES]
    return planted, looks


def pii_scores(planted: list[dict], lookalikes: list, skip=()) -> dict:
    """Recall and precision, per kind and overall.

    A planted value counts as caught when one finding of its own kind covers it (an IPv4 address redacted as
    [PHONE] is a miss for `ip` and a false positive for `phone`). Precision per kind: such findings over every
    finding of that kind, in the planted sentences and on the look-alikes. `overreach` counts caught values whose
    finding runs past them (a word of the sentence redacted along with the datum)."""
    per = {k: {"planted": 0, "caught": 0, "false_positives": 0, "overreach": 0} for k in KINDS}
    missed, flagged = [], []
    n_data = 0
    for item in planted:
        text = item["text"]
        data = []
        for d in [item] + item.get("also", []):
            start = text.index(d["value"])
            data.append({"kind": d["kind"], "start": start, "end": start + len(d["value"]), "hit": False})
            per[d["kind"]]["planted"] += 1
            n_data += 1
        for f in find_pii(text, skip):
            d = next((d for d in data if d["kind"] == f.kind and not d["hit"] and f.start <= d["start"] and
                      f.end >= d["end"]), None)
            if d is None:
                per[f.kind]["false_positives"] += 1
                continue
            d["hit"] = True
            per[f.kind]["caught"] += 1
            per[f.kind]["overreach"] += f.start < d["start"] or f.end > d["end"]
        missed += [f"{d['kind']}: {text}" for d in data if not d["hit"]]
    for look in lookalikes:
        text = look["text"] if isinstance(look, dict) else look
        for f in find_pii(text, skip):
            per[f.kind]["false_positives"] += 1
            flagged.append(f"{f.kind}: {text}")
    for k, v in per.items():
        v["recall"] = v["caught"] / v["planted"] if v["planted"] else None
        found = v["caught"] + v["false_positives"]
        v["precision"] = v["caught"] / found if found else None
    caught = sum(v["caught"] for v in per.values())
    false_pos = sum(v["false_positives"] for v in per.values())
    return {"planted": n_data, "sentences": len(planted), "lookalikes": len(lookalikes),
            "recall": caught / max(1, n_data),
            "precision": caught / (caught + false_pos) if caught + false_pos else 1.0, "false_positives": false_pos,
            "per_kind": per, "missed": missed[:20], "flagged_lookalikes": flagged[:20]}


def rule_costs(seeds=(0, 1, 2, 3)) -> dict:
    """For each rule of OPTIONAL_RULES: what leaving it out changes on the benchmark of every seed given
    (planted values caught, false positives), summed over the seeds. The evidence behind each rule's choice."""
    data = [pii_benchmark(s) for s in seeds]
    full = [pii_scores(p, l) for p, l in data]
    out = {}
    for rule in OPTIONAL_RULES:
        without = [pii_scores(p, l, skip={rule}) for p, l in data]
        out[rule] = {"caught_with": sum(sum(v["caught"] for v in s["per_kind"].values()) for s in full),
                     "caught_without": sum(sum(v["caught"] for v in s["per_kind"].values()) for s in without),
                     "false_positives_with": sum(s["false_positives"] for s in full),
                     "false_positives_without": sum(s["false_positives"] for s in without),
                     "what": OPTIONAL_RULES[rule]}
    return out
