"""The offline model's own tests."""

#: A strict function tool the offline model knows how to call.
CALC_TOOL = {
    "type": "function",
    "name": "calculate",
    "parameters": {
        "type": "object",
        "properties": {"expression": {"type": "string"}},
        "required": ["expression"],
        "additionalProperties": False,
    },
}
