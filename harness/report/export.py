"""Exporting an executed report notebook to one self-contained HTML page (code hidden, plots embedded).

The page loads no script from the network (no require.js, MathJax or mermaid), every plot carries an alternative
text taken from the heading above it, and cells tagged :data:`REMOVE_FROM_HTML_TAG` (the machine-readable copies of
:func:`harness.report.tables.glue_table`) stay in the notebook but not on the page.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.report.errors import ReportError

__all__ = ["REMOVE_FROM_HTML_TAG", "export_html"]

#: Cell tag of cells kept in the executed notebook but left out of the HTML export.
REMOVE_FROM_HTML_TAG = "remove_cell"


_HTML_TEMPLATE = """{%- extends 'index.html.j2' -%}
{#- A self-contained report: no require.js, MathJax or mermaid from a CDN (pages open offline, no console
    errors); plots are already embedded as data: images. -#}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
{%- set alt = (output | get_metadata('alt', 'image/png')) or 'plot' -%}
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}" alt="{{ alt | escape_html }}">
</div>
{%- endblock data_png -%}
{%- block extra_css -%}
<style type="text/css">
  body.jp-Notebook { max-width: 1200px; margin: 0 auto; padding: 1em 2em; }
  .jp-RenderedHTMLCommon table { font-size: 12px; }
</style>
{%- endblock extra_css -%}
"""


def _describe_plots(nb: Any) -> None:
    """Give each PNG output an alternative text: ``Plot: <the markdown heading above it>``."""
    heading = "report"
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            titles = [line.lstrip("#").strip() for line in cell.source.splitlines() if line.startswith("#")]
            heading = titles[-1] if titles else heading
            continue
        for output in cell.get("outputs", []):
            if "image/png" in output.get("data", {}):
                output.setdefault("metadata", {}).setdefault("image/png", {})["alt"] = f"Plot: {heading}"


def export_html(notebook: Path, *, title: str) -> Path:
    """Export an executed notebook next to it as ``.html``: code hidden, cells tagged ``remove_cell`` dropped.

    Raises:
        ReportError: the notebook cannot be read or rendered.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    target = notebook.with_suffix(".html")
    try:
        nb = nbformat.read(notebook, as_version=4)
        nb.metadata["title"] = title
        _describe_plots(nb)
        exporter = HTMLExporter(
            template_name="lab",
            extra_loaders=[jinja2.DictLoader({"harness_report.html.j2": _HTML_TEMPLATE})],
            template_file="harness_report.html.j2",
            exclude_input=True,
            exclude_input_prompt=True,
            exclude_output_prompt=True,
            embed_images=True,
        )
        exporter.register_preprocessor(
            TagRemovePreprocessor(remove_cell_tags={REMOVE_FROM_HTML_TAG}, enabled=True), enabled=True
        )
        body, _resources = exporter.from_notebook_node(nb)
    except Exception as exc:  # nbconvert raises many types (template, schema, IO)
        raise ReportError(f"cannot export {notebook} to HTML: {type(exc).__name__}: {exc}", str(notebook)) from None
    target.write_text(body, encoding="utf-8")
    return target
