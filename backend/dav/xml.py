"""DAV's XML: request bodies parsed by `defusedxml` (a DTD, and so any entity, is refused
before anything is expanded), bounded in size and depth; answers built with ElementTree, which
escapes every text node and attribute. Property names are Clark names, `{namespace}local`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, cast
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from backend.errors import AppError, InvalidRequest

DAV: Final = "DAV:"
CALDAV: Final = "urn:ietf:params:xml:ns:caldav"
CS: Final = "http://calendarserver.org/ns/"
APPLE: Final = "http://apple.com/ns/ical/"
_PREFIXES = {DAV: "D", CALDAV: "C", CS: "CS", APPLE: "A", "urn:x-task-api:": "T"}
for _uri, _prefix in _PREFIXES.items():
    ET.register_namespace(_prefix, _uri)

# A PROPFIND or REPORT body: a few kilobytes in practice (a multiget of hundreds of hrefs
# stays far below this); more is 413 before it is parsed.
MAX_BODY_BYTES = 256 * 1024
# Nesting past this is no DAV request (a filter is a handful of levels deep).
MAX_DEPTH = 32
MEDIA_TYPE = "application/xml; charset=utf-8"


class MethodRefused(AppError):
    """A method the resource does not answer (RFC 9110 15.5.6): 405 with what it does."""

    status_code = 405
    code = "METHOD_NOT_ALLOWED"
    message = "This resource does not answer this method"

    def __init__(self, allow: str) -> None:
        super().__init__(self.message, extra_headers={"Allow": allow})


class MalformedXml(InvalidRequest):
    """A body that is not a DAV request (malformed, a DTD, too deep, the wrong root): 400."""

    status_code = 400
    code = "INVALID_XML"
    message = "The request body is not well-formed XML of the kind this method takes"


class PreconditionRefused(AppError):
    """A DAV precondition a request fails (RFC 4918 §16): 403 naming its element, `condition`."""

    status_code = 403
    code = "DAV_PRECONDITION"

    def __init__(self, condition: str, message: str) -> None:
        super().__init__(message)
        self.condition = condition


def clark(namespace: str, local: str) -> str:
    return f"{{{namespace}}}{local}"


class PayloadTooLarge(PreconditionRefused):
    """A body past `MAX_BODY_BYTES`: 413 `max-resource-size`, before the rest of it is read."""

    status_code = 413
    code = "PAYLOAD_TOO_LARGE"

    def __init__(self) -> None:
        super().__init__(
            clark(CALDAV, "max-resource-size"),
            f"A DAV request body is at most {MAX_BODY_BYTES} bytes",
        )


def parse(body: bytes, root: str) -> Element | None:
    """The document in `body`, its root element `root`; None for an empty body."""
    if not body.strip():
        return None
    document = _document(body)
    if document.tag != root:
        raise MalformedXml()
    return document


def _document(body: bytes) -> Element:
    """The XML document in `body`, at most `MAX_DEPTH` deep, else `MalformedXml`."""
    try:
        document = fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (ParseError, DefusedXmlException, ValueError, LookupError):
        # The declared encoding is the client's too: one Python has no codec for (or one that
        # is no text encoding) is LookupError, a multi-byte one expat refuses ValueError.
        raise MalformedXml() from None
    if not isinstance(document, Element) or _depth(document) > MAX_DEPTH:
        raise MalformedXml()
    return document


def _depth(element: Element) -> int:
    deepest, stack = 1, [(element, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in node)
    return deepest


@dataclass(frozen=True)
class PropfindRequest:
    """What a PROPFIND asks: every property (an empty body too), their names, or `names`."""

    allprop: bool = True
    propname: bool = False
    names: tuple[str, ...] = field(default_factory=tuple)


def propfind_request(body: bytes) -> PropfindRequest:
    document = parse(body, clark(DAV, "propfind"))
    if document is None:
        return PropfindRequest()
    children = list(document)
    if not children:
        raise MalformedXml()
    kind = children[0]
    if kind.tag == clark(DAV, "allprop"):
        return PropfindRequest()
    if kind.tag == clark(DAV, "propname"):
        return PropfindRequest(allprop=False, propname=True)
    if kind.tag == clark(DAV, "prop"):
        return PropfindRequest(allprop=False, names=tuple(str(child.tag) for child in kind))
    raise MalformedXml()


# A PROPPATCH (RFC 4918 9.2): each property set (its text) or removed (None), in order.
PropertyUpdate = tuple[tuple[str, str | None], ...]


def proppatch_request(body: bytes) -> PropertyUpdate:
    document = parse(body, clark(DAV, "propertyupdate"))
    if document is None:
        raise MalformedXml()
    changes: list[tuple[str, str | None]] = []
    for action in document:
        if action.tag not in (clark(DAV, "set"), clark(DAV, "remove")):
            raise MalformedXml()
        prop = action.find(clark(DAV, "prop"))
        if prop is None:
            raise MalformedXml()
        removes = action.tag == clark(DAV, "remove")
        changes.extend((str(node.tag), None if removes else (node.text or "")) for node in prop)
    if not changes:
        raise MalformedXml()
    return tuple(changes)


@dataclass(frozen=True)
class MakeCollection:
    """An MKCALENDAR's (RFC 4791 5.3.1) or an extended MKCOL's (RFC 5689) body: each property
    set (its text, in the body's order), the components `supported-calendar-component-set`
    names and the `resourcetype` asked for (None: not named)."""

    changes: tuple[tuple[str, str], ...] = ()
    components: tuple[str, ...] | None = None
    resourcetype: tuple[str, ...] | None = None


def make_collection_request(body: bytes, root: str) -> MakeCollection:
    """`root`'s body (`C:mkcalendar` or `D:mkcol`): `D:set`s of properties; empty: none."""
    document = parse(body, root)
    if document is None:
        return MakeCollection()
    changes: list[tuple[str, str]] = []
    components: tuple[str, ...] | None = None
    resourcetype: tuple[str, ...] | None = None
    for action in document:
        prop = action.find(clark(DAV, "prop"))
        if action.tag != clark(DAV, "set") or prop is None:
            raise MalformedXml()
        for node in prop:
            if node.tag == clark(CALDAV, "supported-calendar-component-set"):
                named = (c.get("name", "") for c in node if c.tag == clark(CALDAV, "comp"))
                components = tuple(name.upper() for name in named)
            elif node.tag == clark(DAV, "resourcetype"):
                resourcetype = tuple(str(child.tag) for child in node)
            else:
                changes.append((str(node.tag), node.text or ""))
    return MakeCollection(tuple(changes), components, resourcetype)


def propstats(path: str, statuses: Mapping[str, str]) -> bytes:
    """A PROPPATCH's 207 body: one propstat per property with its status (`200 OK`, ...)."""
    response = element(clark(DAV, "response"), None, href(path))
    for name, status in statuses.items():
        response.append(_propstat([Element(name)], status))
    root = element(clark(DAV, "multistatus"), None, response)
    return cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=True))


# A property's value: text, an element (or several) to put inside it, or nothing (empty).
Value = str | Element | list[Element] | None


def element(tag: str, text: str | None = None, *children: Element) -> Element:
    node = Element(tag)
    if text is not None:
        node.text = text
    node.extend(children)
    return node


def href(path: str) -> Element:
    return element(clark(DAV, "href"), path)


@dataclass(frozen=True)
class Found:
    """One resource of a multistatus: its href and its properties (Clark name -> value)."""

    path: str
    properties: Mapping[str, Value]


def _propstat(props: Iterable[Element], status: str) -> Element:
    prop = element(clark(DAV, "prop"), None, *props)
    return element(
        clark(DAV, "propstat"), None, prop, element(clark(DAV, "status"), f"HTTP/1.1 {status}")
    )


def _valued(name: str, value: Value) -> Element:
    node = Element(name)
    if isinstance(value, str):
        node.text = value
    elif isinstance(value, Element):
        node.append(value)
    elif isinstance(value, list):
        node.extend(value)
    return node


def multistatus(
    found: Iterable[Found],
    asked: PropfindRequest,
    absent: Iterable[str] = (),
    *,
    truncated: str | None = None,
    sync_token: str | None = None,
) -> bytes:
    """A 207 body: per resource, the properties asked for that it has (200) and those it has
    not (404); each of `absent` a 404 of its own; a sync's `truncated` collection (RFC 6578
    §3.6: a `507` of its own) and its new `sync_token` last."""
    root = Element(clark(DAV, "multistatus"))
    for resource in found:
        response = element(clark(DAV, "response"), None, href(resource.path))
        if asked.propname:
            response.append(_propstat((Element(n) for n in resource.properties), "200 OK"))
        elif asked.allprop:
            props = (_valued(n, v) for n, v in resource.properties.items())
            response.append(_propstat(props, "200 OK"))
        else:
            have = [n for n in asked.names if n in resource.properties]
            missing = [n for n in asked.names if n not in resource.properties]
            if have or not missing:
                props = (_valued(n, resource.properties[n]) for n in have)
                response.append(_propstat(props, "200 OK"))
            if missing:
                response.append(_propstat((Element(n) for n in missing), "404 Not Found"))
        root.append(response)
    for path in list(absent):
        status = element(clark(DAV, "status"), "HTTP/1.1 404 Not Found")
        root.append(element(clark(DAV, "response"), None, href(path), status))
    if truncated is not None:
        status = element(clark(DAV, "status"), "HTTP/1.1 507 Insufficient Storage")
        root.append(element(clark(DAV, "response"), None, href(truncated), status))
    if sync_token is not None:
        root.append(element(clark(DAV, "sync-token"), sync_token))
    return cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=True))


def error_body(code: str, message: str, condition: str | None = None) -> bytes:
    """A DAV error body (RFC 4918 §16): the precondition failed (if one), code and message."""
    root = element(clark(DAV, "error"))
    if condition is not None:
        root.append(element(condition))
    root.append(element("{urn:x-task-api:}code", code))
    root.append(element("{urn:x-task-api:}message", message))
    return cast(bytes, ET.tostring(root, encoding="utf-8", xml_declaration=True))


@dataclass(frozen=True)
class TextMatch:
    """A `prop-filter`'s test (RFC 4791 §9.7.2, §9.7.5): the property is absent
    (`is_not_defined`), present (`text` None), or holds `text` (i;ascii-casemap: case ignored),
    or does not (`negate`)."""

    prop: str
    text: str | None = None
    negate: bool = False
    is_not_defined: bool = False


@dataclass(frozen=True)
class ReportRequest:
    """A REPORT: `calendar-multiget` (its `hrefs`) or `calendar-query` (its VTODO filter:
    `component` the innermost comp-filter's name, a `time_range` on it, its `prop_filters`);
    the properties asked for (`names`), `calendar-data` among them."""

    kind: str
    names: tuple[str, ...]
    hrefs: tuple[str, ...] = ()
    component: str | None = None
    time_range: tuple[str | None, str | None] | None = None
    prop_filters: tuple[TextMatch, ...] = ()
    # `sync-collection` (RFC 6578 §3.2): the token sent (empty: the initial sync), its
    # `sync-level` and the client's `limit` (`nresults`), if any.
    sync_token: str = ""
    sync_level: str = "1"
    limit: int | None = None


_REPORTS = (
    clark(CALDAV, "calendar-multiget"),
    clark(CALDAV, "calendar-query"),
    clark(DAV, "sync-collection"),
)


def report_request(body: bytes) -> ReportRequest:
    """The REPORT in `body`; one we do not answer is 403 `supported-report` (RFC 3253 §3.6)."""
    if not body.strip():
        raise MalformedXml()
    document = _document(body)
    if document.tag not in _REPORTS:
        raise PreconditionRefused(clark(DAV, "supported-report"), _NO_REPORT)
    prop = document.find(clark(DAV, "prop"))
    names = tuple(str(child.tag) for child in prop) if prop is not None else ()
    if document.tag == _REPORTS[0]:
        hrefs = tuple((node.text or "").strip() for node in document.iter(clark(DAV, "href")))
        return ReportRequest("multiget", names, hrefs=hrefs)
    if document.tag == _REPORTS[2]:
        return _sync(document, names)
    return _query(document, names)


_NO_REPORT = "This collection answers calendar-multiget, calendar-query and sync-collection"
# A `limit`'s `nresults` past this is no limit we could ever reach (a collection's size is
# bounded far below it); a number this long is refused rather than converted.
_MAX_NRESULTS = 1_000_000


def _sync(document: Element, names: tuple[str, ...]) -> ReportRequest:
    """A `sync-collection` (RFC 6578 §6.1); an absent `sync-level` is `1`, as early drafts'
    clients send it."""
    token = document.find(clark(DAV, "sync-token"))
    if token is None:
        raise MalformedXml()
    level = (document.findtext(clark(DAV, "sync-level")) or "1").strip().lower()
    if level not in ("1", "infinite", "infinity"):
        raise MalformedXml()
    limit = None
    node = document.find(clark(DAV, "limit"))
    if node is not None:
        text = (node.findtext(clark(DAV, "nresults")) or "").strip()
        if not text.isascii() or not text.isdigit() or len(text) > 7:
            raise MalformedXml()
        limit = int(text)
        if not 0 < limit <= _MAX_NRESULTS:
            raise MalformedXml()
    return ReportRequest(
        "sync", names, sync_token=(token.text or "").strip(), sync_level=level, limit=limit
    )


def _query(document: Element, names: tuple[str, ...]) -> ReportRequest:
    top = document.find(clark(CALDAV, "filter"))
    if top is None:
        return ReportRequest("query", names)
    component: str | None = None
    node = top
    time_range = None
    filters: list[TextMatch] = []
    while (inner := node.find(clark(CALDAV, "comp-filter"))) is not None:
        component = inner.get("name", "").upper()
        node = inner
    if component is not None and node is not top:
        found = node.find(clark(CALDAV, "time-range"))
        if found is not None:
            time_range = (found.get("start"), found.get("end"))
        for prop in node.findall(clark(CALDAV, "prop-filter")):
            name = prop.get("name", "").upper()
            match = prop.find(clark(CALDAV, "text-match"))
            if prop.find(clark(CALDAV, "is-not-defined")) is not None:
                filters.append(TextMatch(name, is_not_defined=True))
            elif match is not None:
                negate = match.get("negate-condition", "no").lower() == "yes"
                filters.append(TextMatch(name, match.text or "", negate))
            else:
                filters.append(TextMatch(name))
    return ReportRequest(
        "query", names, component=component, time_range=time_range, prop_filters=tuple(filters)
    )
