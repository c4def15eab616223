"""The Gradio rating app: UI only. Every callback is one call into `annotation.service.Service`.

Blinding: components only ever carry opaque item ids, image pixels and caption text; the item -> system mapping stays
in the database. Resume: the screen is recomputed from the database for the logged-in user on every page load.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from capeval.errors import CapevalError  # noqa: E402

from annotation.service import Screen, Service  # noqa: E402

# Order of the annotator screen's outputs in raw HTTP answers (/gradio_api/run/submit etc.); gradio_client drops the
# first one (a layout block).
SCREEN_FIELDS = ("annotate", "done", "progress", "status", "image", "caption", "caption_b", "token")

CSS = """
#caption textarea, #caption_b textarea { font-size: 1.35rem !important; line-height: 1.5; }
#progress { font-size: 1.1rem; font-weight: 600; }
#image img { object-fit: contain; }
#done { font-size: 1.3rem; }
"""


def shortcut_js(service: Service) -> str:
    """Keyboard shortcuts for every rating level, the flags and submit (Gradio has no hotkey API: plain JS)."""
    keys: dict[str, list[str]] = {}
    for c in service.campaign.rubric.criteria:
        if c.kind == "flag":
            keys[c.keys[0]] = [c.name, "flag"]
        else:
            for (value, _), key in zip(c.levels, c.keys):
                keys[key] = [c.name, value]
    return """
() => {
  const KEYS = %s;
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    const typing = t && (t.tagName === 'TEXTAREA' ||
                         (t.tagName === 'INPUT' && !['radio', 'checkbox'].includes(t.type)));
    if (typing) return;
    if (!document.querySelector('#annotate') || document.querySelector('#annotate').offsetParent === null) return;
    if (e.key === 'Enter') {
      if (t && t.tagName === 'BUTTON') return;
      const b = document.querySelector('#submit'); if (b) { e.preventDefault(); b.click(); }
      return;
    }
    const hit = KEYS[e.key.toLowerCase()];
    if (!hit) return;
    e.preventDefault();
    const [crit, value] = hit;
    const sel = value === 'flag' ? `#${crit} input[type=checkbox]` : `#${crit} input[type=radio][value="${value}"]`;
    const inp = document.querySelector(sel);
    if (inp) inp.click();
  });
}
""" % json.dumps(keys)


def build_app(service: Service) -> gr.Blocks:
    """The annotator page and, for admin logins, the researcher view."""
    rubric = service.campaign.rubric
    crit_components: list[gr.components.Component] = []

    with gr.Blocks(title=f"{service.campaign.name} · caption rating", analytics_enabled=False) as demo:
        with gr.Column(visible=False, elem_id="annotate") as annotate_col:
            with gr.Row():
                progress = gr.Markdown("", elem_id="progress")
                status = gr.Markdown("", elem_id="status")
            with gr.Row():
                with gr.Column(scale=3):
                    image = gr.Image(label="Image", type="filepath", interactive=False, height=560, buttons=[],
                                     elem_id="image", show_label=False)
                with gr.Column(scale=2):
                    caption_a = gr.Textbox(label="Caption A" if rubric.pairwise else "Caption", interactive=False,
                                           lines=2, max_lines=12, elem_id="caption")
                    caption_b = gr.Textbox(label="Caption B", interactive=False, lines=2, max_lines=12,
                                           elem_id="caption_b", visible=rubric.pairwise)
                    for c in rubric.criteria:
                        if c.kind == "flag":
                            comp = gr.Checkbox(label=f"{c.label} [{c.keys[0].upper()}]: {c.levels[0][1]}",
                                               value=False, elem_id=c.name)
                        else:
                            comp = gr.Radio(choices=[(f"{v}{'' if k == v.lower() else f' [{k.upper()}]'}: {text}", v)
                                                     for (v, text), k in zip(c.levels, c.keys)],
                                            label=c.label, value=None, elem_id=c.name)
                        crit_components.append(comp)
                    comment = gr.Textbox(label="Comment (optional)", lines=2, max_lines=6, max_length=2000,
                                         elem_id="comment")
                    with gr.Row():
                        back_btn = gr.Button("← Previous item", elem_id="back", size="sm")
                        broken_btn = gr.Button("Report a broken image", elem_id="broken", size="sm", variant="stop")
                        submit_btn = gr.Button("Submit [Enter]", variant="primary", elem_id="submit")
                    token = gr.Textbox(visible="hidden", elem_id="item_token", label="item")
            with gr.Accordion("How to rate", open=True, elem_id="help"):
                gr.Markdown(rubric.help_markdown())
        done_md = gr.Markdown("", visible=False, elem_id="done")
        denied_md = gr.Markdown("", visible=False, elem_id="denied")

        with gr.Column(visible=False, elem_id="admin") as admin_col:
            gr.Markdown("## Researcher view")
            refresh_btn = gr.Button("Refresh", elem_id="refresh")
            per_ann = gr.Dataframe(label="Progress per annotator (gold accuracy = share of gold items answered as "
                                   "expected)", interactive=False, elem_id="per_annotator")
            per_sys = gr.Dataframe(label="Progress per system", interactive=False, elem_id="per_system")
            alpha_df = gr.Dataframe(label="Krippendorff's alpha (ordinal for scales, nominal for flags/choices)",
                                    interactive=False, elem_id="alpha")
            kappa_df = gr.Dataframe(label="Weighted Cohen's kappa (quadratic) per pair of annotators",
                                    interactive=False, elem_id="kappa")
            broken_df = gr.Dataframe(label="Broken-image reports", interactive=False, elem_id="broken_reports")
            with gr.Row():
                fmt = gr.Radio(["csv", "jsonl", "parquet"], value="csv", label="Export format", elem_id="export_format")
                export_btn = gr.Button("Export judgments", elem_id="export")
            export_file = gr.File(label="Judgments (for capeval correlate)", elem_id="export_file", interactive=False)

        screen_outputs = [annotate_col, done_md, progress, status, image, caption_a, caption_b, token,
                          *crit_components, comment]
        admin_outputs = [admin_col, per_ann, per_sys, alpha_df, kappa_df, broken_df]

        def render(s: Screen, first: bool = False) -> list[Any]:
            """Outputs for one screen; `first` also sets the layout (page load), later screens leave it alone."""
            if s.done:
                text = f"## All done, thank you!\n\nYou have completed all {s.total} items. Your ratings are saved."
                return [gr.update(visible=False), gr.update(value=text, visible=True), f"{s.progress}",
                        s.message, None, "", "", "", *[gr.update(value=None) for _ in crit_components], ""]
            prev = s.previous or {}
            values = []
            for c in rubric.criteria:
                v = prev.get(c.name)
                values.append(bool(v) if c.kind == "flag" else (str(v) if v is not None else None))
            caps = list(s.captions) + [""] * (2 - len(s.captions))
            layout = [gr.update(visible=True), gr.update(value="", visible=False)] if first else [gr.skip(), gr.skip()]
            return [*layout, s.progress, s.message,
                    s.image_path, caps[0], caps[1], s.public_id, *values, s.comment]

        def admin_render(user: str | None) -> list[Any]:
            summ = service.summary(user)
            return [gr.update(visible=True), summ.per_annotator, summ.per_system, summ.alpha, summ.kappa,
                    summ.broken_reports]

        def on_load(request: gr.Request):
            user = request.username
            role = service.role(user)
            if role == "admin":
                return [gr.update(visible=False), gr.update(visible=False), *[gr.skip()] * (len(screen_outputs) - 2),
                        *admin_render(user), gr.update(visible=False)]
            if role == "annotator":
                return [*render(service.current(user), True), *[gr.skip()] * len(admin_outputs),
                        gr.update(visible=False)]
            return [*[gr.skip()] * (len(screen_outputs) + len(admin_outputs)),
                    gr.update(value="This login is not part of this campaign.", visible=True)]

        def call(fn, *args):
            try:
                return fn(*args)
            except CapevalError as exc:
                raise gr.Error(str(exc), print_exception=False) from None

        def on_current(request: gr.Request):
            return render(call(service.current, request.username), True)

        def on_submit(request: gr.Request, item: str, *rest: Any):
            *vals, note = rest
            raw = {c.name: v for c, v in zip(rubric.criteria, vals)}
            _, screen = call(service.submit, request.username, item, raw, note)
            return render(screen)

        def validate(item: str, *rest: Any):
            *vals, _note = rest
            out = [gr.validate(True, "")]
            for c, v in zip(rubric.criteria, vals):
                ok = c.kind == "flag" or (v is not None and v != "")
                out.append(gr.validate(ok, f"Choose a rating for: {c.label}"))
            return [*out, gr.validate(True, "")]

        def on_broken(item: str, note: str, request: gr.Request):
            _, screen = call(service.report_broken, request.username, item, note)
            return render(screen)

        def on_back(item: str, request: gr.Request):
            return render(call(service.back, request.username, item or None), True)

        def on_refresh(request: gr.Request):
            return call(admin_render, request.username)

        export_dir: list[Path] = []  # one folder per server, files overwritten (Gradio serves a cached copy)

        def on_export(kind: str, request: gr.Request):
            if kind not in ("csv", "jsonl", "parquet"):
                raise gr.Error("export format must be csv, jsonl or parquet")
            if not export_dir:
                export_dir.append(Path(tempfile.mkdtemp(prefix="capeval-export-")))
            out = export_dir[0] / f"judgments.{kind}"
            return str(call(service.export, request.username, out))

        demo.load(on_load, None, [*screen_outputs, *admin_outputs, denied_md], api_visibility="private")
        current_btn = gr.Button(visible=False)
        current_btn.click(on_current, None, screen_outputs, api_name="current", queue=False)
        # Annotator events skip Gradio's queue: they are short database calls, and the queue's SSE round trip
        # would dominate their latency. Writes stay serialised (and idempotent) in the store.
        submit_btn.click(on_submit, [token, *crit_components, comment], screen_outputs, api_name="submit",
                         validator=validate, trigger_mode="once", queue=False)
        broken_btn.click(on_broken, [token, comment], screen_outputs, api_name="report_broken",
                         trigger_mode="once", queue=False)
        back_btn.click(on_back, [token], screen_outputs, api_name="back", trigger_mode="once", queue=False)
        refresh_btn.click(on_refresh, None, admin_outputs, api_name="admin_summary")
        export_btn.click(on_export, [fmt], [export_file], api_name="admin_export")
    return demo


def launch(service: Service, *, host: str = "127.0.0.1", port: int | None = 7860, prevent_thread_lock: bool = False,
           quiet: bool = False) -> tuple[gr.Blocks, str]:
    """Start the server (login required; offline; only the campaign's image folder is served)."""
    demo = build_app(service)
    # Images reach the browser as copies in Gradio's cache (/tmp/gradio/<hash>/<file name>), so the campaign's own
    # folder names never show; serving the folder in place (gr.set_static_paths) measured no faster.
    demo.queue(default_concurrency_limit=8, max_size=512)
    _, url, _ = demo.launch(
        server_name=host, server_port=port, auth=service.login,
        auth_message=f"{service.campaign.name}: log in with the name and password your researcher gave you.",
        share=False, ssr_mode=False, prevent_thread_lock=prevent_thread_lock, quiet=quiet, show_error=True,
        allowed_paths=[str(service.images.folder)], footer_links=[], run_history=False, css=CSS,
        js=shortcut_js(service), max_file_size="1mb", enable_monitoring=False, mcp_server=False, pwa=False,
    )
    return demo, url
