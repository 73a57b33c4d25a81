"""A report as a list of blocks, rendered to markdown or to self-contained-ish HTML.

Blocks are plain tuples so that every section builder stays a pure function:
``("h", level, text)``, ``("p", text)``, ``("list", [items])``,
``("table", header, rows)``, ``("img", path, caption)``, ``("pre", text)``.
"""

from __future__ import annotations

import html
from typing import Any

Block = tuple[Any, ...]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(title: str, blocks: list[Block]) -> str:
    """Render ``blocks`` as GitHub-flavoured markdown."""
    lines = [f"# {title}", ""]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * (block[1] + 1) + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "list":
            lines += [f"- {item}" for item in block[1]] + [""]
        elif kind == "table":
            header, rows = block[1], block[2]
            lines.append("| " + " | ".join(_cell(h) for h in header) + " |")
            lines.append("|" + " --- |" * len(header))
            lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
            lines.append("")
        elif kind == "img":
            lines += [f"![{block[2]}]({block[1]})", "", f"*{block[2]}*", ""]
        elif kind == "pre":
            lines += ["```", block[1], "```", ""]
    return "\n".join(lines)


def to_html(title: str, blocks: list[Block]) -> str:
    """Render ``blocks`` as one HTML page (figures are linked PNG files beside it)."""
    esc = html.escape
    body = [f"<h1>{esc(title)}</h1>"]
    for block in blocks:
        kind = block[0]
        if kind == "h":
            level = min(block[1] + 1, 6)
            body.append(f"<h{level}>{esc(block[2])}</h{level}>")
        elif kind == "p":
            body.append(f"<p>{esc(block[1])}</p>")
        elif kind == "list":
            body.append("<ul>" + "".join(f"<li>{esc(str(i))}</li>" for i in block[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{esc(str(h))}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            body.append(f'<figure><img src="{esc(block[1])}" alt="{esc(block[2])}">'
                        f"<figcaption>{esc(block[2])}</figcaption></figure>")
        elif kind == "pre":
            body.append(f"<pre>{esc(block[1])}</pre>")
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}"
             "img{max-width:100%}figcaption{font-style:italic;color:#555}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")
