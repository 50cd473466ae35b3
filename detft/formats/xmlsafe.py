"""XML parsing for untrusted annotation files: defusedxml refuses entities, DTDs and external
references (billion laughs, XXE), and every failure names the file and line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

from ..errors import FormatError


def parse(path: Path) -> Element:
    return _parsed(lambda: DET.parse(path, forbid_dtd=True).getroot(), path)


def parse_text(text: str, where: str) -> Element:
    """:func:`parse` of XML held in memory (a Label Studio project's labelling config, sent by its server);
    ``where`` names it in errors."""
    return _parsed(lambda: DET.fromstring(text, forbid_dtd=True), where)


def _parsed(read: Callable[[], Element], where: str | Path) -> Element:
    try:
        return read()
    except ParseError as e:
        line = e.position[0] if getattr(e, "position", None) else None
        raise FormatError(where, f"invalid XML: {e}", line=line) from None
    except LookupError as e:  # <?xml encoding="..."?> naming an encoding that does not exist
        raise FormatError(where, f"invalid XML: {e}", line=1) from None
    except DefusedXmlException as e:
        raise FormatError(where, f"unsafe XML rejected ({e.__class__.__name__}): DTDs and entities are not allowed") from None
