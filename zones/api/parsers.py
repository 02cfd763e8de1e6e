"""Request body parsers: DRF's, with JSON nested too deeply for Python's decoder turned into a 400.

json.loads raises RecursionError (not a ValueError, which DRF turns into a 400) for a body of a
few hundred kilobytes of `[[[[…`: without this it is a 500.
"""
from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply.") from None
