"""The metric names a PromQL expression (or a Grafana variable query) reads, and the series
names a Prometheus text exposition makes queryable.

A small tokenizer, not a full parser: it knows PromQL's lexical parts (strings, label matchers,
range and subquery brackets, durations, numbers, keywords, grouping label lists) and Grafana's
variables, so whatever identifier is left and not called like a function is a metric name.
An unknown function is an error, not a guess: a typo must not hide a metric.
"""

from __future__ import annotations

import re

_AGGREGATION_WORDS = (
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
    "limit_ratio"
)
_FUNCTION_WORDS = """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv double_exponential_smoothing end exp floor histogram_avg
    histogram_count histogram_fraction histogram_quantile histogram_stddev histogram_stdvar
    histogram_sum holt_winters hour idelta increase info irate label_join label_replace
    last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin
    sinh sort sort_by_label sort_by_label_desc sort_desc sqrt start stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp vector year
"""
AGGREGATIONS = frozenset(_AGGREGATION_WORDS.split())
FUNCTIONS = frozenset(_FUNCTION_WORDS.split())
# Keywords followed by a parenthesised list of label names (not metrics).
GROUPING = frozenset(["by", "without", "on", "ignoring", "group_left", "group_right"])
KEYWORDS = frozenset(["and", "or", "unless", "offset", "bool", "atan2"]) | GROUPING
NUMBER_WORDS = frozenset({"inf", "nan"})

_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?[A-Za-z0-9_.]*")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z0-9_]+|\[\[[^\]]*\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((?P<args>.*)\)\s*$", re.DOTALL)
_QUERY_RESULT = re.compile(r"^\s*query_result\((?P<expr>.*)\)\s*$", re.DOTALL)
_LABEL_NAME = re.compile(r"^\s*[A-Za-z_][A-Za-z0-9_]*\s*$")


class PromQLSyntaxError(ValueError):
    """The expression is not PromQL this reader understands (e.g. an unknown function)."""


def _skip_string(expr: str, start: int) -> int:
    """Index just past the string literal that starts at `start` (", ' or `)."""
    quote = expr[start]
    index = start + 1
    while index < len(expr):
        char = expr[index]
        if char == "\\" and quote != "`":
            index += 2
            continue
        if char == quote:
            return index + 1
        index += 1
    raise PromQLSyntaxError(f"unterminated string at {start}: {expr!r}")


def _skip_balanced(expr: str, start: int, close: str) -> int:
    """Index just past the `close` that ends the bracket at `start` (strings skipped)."""
    index = start + 1
    while index < len(expr):
        char = expr[index]
        if char in "\"'`":
            index = _skip_string(expr, index)
            continue
        if char == close:
            return index + 1
        index += 1
    raise PromQLSyntaxError(f"unbalanced {expr[start]!r} at {start}: {expr!r}")


def _matcher_names(block: str) -> set[str]:
    """Metric names selected inside `{...}` by `__name__="..."` (other matchers are labels)."""
    names = set()
    pattern = r'__name__\s*=\s*("(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`)'
    for match in re.finditer(pattern, block):
        names.add(match.group(1)[1:-1])
    return names


def _next_char(expr: str, index: int) -> str:
    """The first non-blank character at or after `index` ("" at the end)."""
    while index < len(expr) and expr[index].isspace():
        index += 1
    return expr[index] if index < len(expr) else ""


def _next_word(expr: str, index: int) -> str:
    """The identifier that starts at the first non-blank character after `index`, or ""."""
    while index < len(expr) and expr[index].isspace():
        index += 1
    match = _IDENTIFIER.match(expr, index)
    return match.group() if match else ""


def _matcher_labels(block: str) -> set[str]:
    """Label names matched inside `{...}` (strings skipped; `__name__` is the metric)."""
    labels = set()
    index = 1
    while index < len(block):
        if block[index] in "\"'`":
            index = _skip_string(block, index)
        elif (match := _IDENTIFIER.match(block, index)) is not None:
            index = match.end()
            if match.group() != "__name__":
                labels.add(match.group())
        else:
            index += 1
    return labels


def _grouping_labels(group: str) -> set[str]:
    """Label names in a grouping list `(a, b)`."""
    return {match.group() for match in _IDENTIFIER.finditer(group)}


def metric_names(expr: str) -> set[str]:
    """Every metric name a PromQL expression selects (Grafana variables allowed)."""
    return _scan(expr)[0]


def label_names(expr: str) -> set[str]:
    """Every label name a PromQL expression matches on or groups by (`by`, `without`, `on`,
    `ignoring`, `group_left`, `group_right`); not those label_replace/label_join make."""
    return _scan(expr)[1]


def _scan(expr: str) -> tuple[set[str], set[str]]:
    """The metric names and the label names of an expression."""
    expr = _GRAFANA_VARIABLE.sub(" ", expr)
    names: set[str] = set()
    labels: set[str] = set()
    index = 0
    while index < len(expr):
        char = expr[index]
        if char.isspace():
            index += 1
        elif char == "#":
            end = expr.find("\n", index)
            index = len(expr) if end < 0 else end
        elif char in "\"'`":
            index = _skip_string(expr, index)
        elif char == "{":
            end = _skip_balanced(expr, index, "}")
            names |= _matcher_names(expr[index:end])
            labels |= _matcher_labels(expr[index:end])
            index = end
        elif char == "[":
            index = _skip_balanced(expr, index, "]")
        elif char.isdigit() or (char == "." and expr[index + 1 : index + 2].isdigit()):
            match = _NUMBER.match(expr, index)
            assert match is not None
            index = match.end()
        elif (match := _IDENTIFIER.match(expr, index)) is not None:
            word, index = match.group(), match.end()
            following = _next_char(expr, index)
            if word in GROUPING and following == "(":
                start = expr.index("(", index)
                index = _skip_balanced(expr, start, ")")
                labels |= _grouping_labels(expr[start:index])
            elif word in KEYWORDS or word.lower() in NUMBER_WORDS:
                pass
            elif word in AGGREGATIONS and _next_word(expr, index) in ("by", "without"):
                pass  # `sum by (label) (expr)`: the grouping comes before the argument
            elif following == "(":
                if word not in FUNCTIONS and word not in AGGREGATIONS:
                    raise PromQLSyntaxError(f"unknown function {word!r} in {expr!r}")
            else:
                names.add(word)
        else:
            index += 1  # an operator or punctuation
    return names, labels


def grafana_query_names(query: str) -> set[str]:
    """Metric names a Grafana Prometheus variable query reads: `label_values(expr, label)`,
    `label_values(label)`, `query_result(expr)`, `metrics(regex)`, or plain PromQL."""
    if (match := _LABEL_VALUES.match(query)) is not None:
        args = match.group("args")
        selector, _, label = args.rpartition(",")
        if not selector:
            if not _LABEL_NAME.match(args):
                raise PromQLSyntaxError(f"label_values needs a label name: {query!r}")
            return set()
        if not _LABEL_NAME.match(label):
            raise PromQLSyntaxError(f"label_values needs a label name last: {query!r}")
        return metric_names(selector)
    if (match := _QUERY_RESULT.match(query)) is not None:
        return metric_names(match.group("expr"))
    if query.strip().startswith("metrics("):
        return set()
    return metric_names(query)


# The series each metric type exposes, as suffixes of the family name of its TYPE line.
_SERIES_SUFFIXES = {
    "counter": ("",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
    "summary": ("", "_sum", "_count"),
    "info": ("",),
    "stateset": ("",),
    "untyped": ("",),
    "unknown": ("",),
}


def exposed_families(exposition: str) -> dict[str, str]:
    """Family name -> type, from the `# TYPE` lines of a text exposition (a family with no
    samples yet, e.g. a labelled counter never incremented, still has its TYPE line)."""
    families = {}
    for line in exposition.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[:2] == ["#", "TYPE"]:
            families[parts[2]] = parts[3]
    return families


def queryable_series(families: dict[str, str]) -> set[str]:
    """The metric names PromQL can select from these families (e.g. a histogram's
    `_bucket`, `_sum`, `_count`, never its bare name; a counter as exposed, with `_total`)."""
    series = set()
    for family, kind in families.items():
        for suffix in _SERIES_SUFFIXES.get(kind, ("",)):
            series.add(family + suffix)
    return series
