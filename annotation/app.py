"""The Gradio rating app: UI only. Every callback is one call into `annotation.service.Service`.

Blinding: components only ever carry opaque item ids, image pixels and caption text; the item -> system mapping stays
in the database. Resume: the screen is recomputed from the database for the logged-in user on every page load.
Logins, sessions and the HTTP rules live in `annotation.server`, which mounts this app.
"""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import json  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import gradio as gr  # noqa: E402

from capeval.errors import CapevalError  # noqa: E402

from annotation.service import Forbidden, Screen, Service  # noqa: E402

# Order of the first outputs of /current, /submit, /back and /report_broken (raw HTTP and gradio_client alike); then
# come the ratings, the comment and one "reason" text per criterion (why a submission was not saved).
SCREEN_FIELDS = ("progress", "bar", "status", "image", "caption", "caption_b", "token")
# Inputs of /submit after the ratings: comment, then the page's active time in ms ("" from API clients).

CSS = """
#caption textarea, #caption_b textarea { font-size: 1.2rem !important; line-height: 1.35; }
#progress { font-size: 1rem; font-weight: 600; }
#progress p, #status p { margin: 0; }
#image img { object-fit: contain; max-height: calc(100vh - 120px) !important; width: 100%; }
#image { max-height: calc(100vh - 110px); min-height: 240px; }
#done { font-size: 1.3rem; }
.cv-bar { height: 8px; background: #e5e7eb; border-radius: 4px; overflow: hidden; margin-top: 10px; }
.cv-bar > div { height: 100%; background: #ea580c; }
.reason, .reason p { color: #b91c1c !important; font-weight: 600; margin: 0 !important; }
.reason:not(:has(p)) { display: none !important; }
.rubric { --block-padding: 4px 10px; --checkbox-label-padding: 1px 8px; --checkbox-label-gap: 6px;
          --layout-gap: 6px; --block-label-margin: 0 0 2px 0; --spacing-lg: 4px; --form-gap-width: 0px; }
.rubric label { font-size: 0.9rem; }
.rubric .wrap { gap: 2px 6px !important; }
#topbar { align-items: center; gap: 8px; }
#confirm_broken { border: 2px solid #b91c1c; border-radius: 8px; padding: 4px; }
.gradio-container { padding-top: 4px !important; }
"""

# Runs before Gradio's own scripts (inserted at the top of <head> by the server). When a request is refused with 401
# (session expired, password changed, logged out elsewhere), a login box appears over the page; the failed request is
# retried after logging in, so nothing entered on the page is lost.
RELOGIN_JS = r"""
(() => {
  const orig = window.fetch.bind(window);
  let pending = null;
  function ask() {
    if (pending) return pending;
    pending = new Promise((resolve) => {
      const box = document.createElement('div');
      box.id = 'relogin';
      box.setAttribute('role', 'dialog');
      box.style.cssText = 'position:fixed;inset:0;background:rgba(0,0,0,.45);z-index:99999;display:flex;' +
        'align-items:center;justify-content:center;font-family:system-ui,sans-serif';
      box.innerHTML = '<form style="background:#fff;padding:1.5rem 2rem;border-radius:12px;width:22rem">' +
        '<h2 style="margin-top:0;font-size:1.2rem">Please log in again</h2>' +
        '<p>Your session ended (the server restarted, it expired, or the password changed). ' +
        'What you entered on this page is kept and will be sent after you log in.</p>' +
        '<label>Name<br><input name="username" aria-label="relogin username" autocomplete="username" ' +
        'style="width:100%;padding:.5rem" required></label><br><br>' +
        '<label>Password<br><input name="password" type="password" aria-label="relogin password" ' +
        'autocomplete="current-password" style="width:100%;padding:.5rem" required></label>' +
        '<p class="msg" role="alert" style="color:#b91c1c;min-height:1.2em"></p>' +
        '<button type="submit" style="width:100%;padding:.6rem;background:#ea580c;color:#fff;border:0;' +
        'border-radius:8px">Log in and continue</button></form>';
      document.body.appendChild(box);
      const form = box.querySelector('form');
      form.addEventListener('keydown', (e) => e.stopPropagation());
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        e.stopPropagation();
        const r = await orig('login', {method: 'POST', body: new URLSearchParams(new FormData(form)),
                                       headers: {'Accept': 'application/json'}});
        if (r.ok) { box.remove(); pending = null; resolve(); return; }
        let t = 'Log in failed.';
        try { t = (await r.json()).error || t; } catch (err) {}
        box.querySelector('.msg').textContent = t;
      });
      setTimeout(() => form.querySelector('input').focus(), 50);
    });
    return pending;
  }
  window.fetch = async (input, init) => {
    const url = typeof input === 'string' ? input : (input && input.url) || '';
    const r = await orig(input, init);
    if (r.status === 401 && url.includes('gradio_api/') && r.headers.get('x-capeval-login')) {
      await ask();
      return orig(input, init);
    }
    return r;
  };
  // Active time on the current item: the page is visible, with mouse or keyboard input in the last 60 s.
  let acc = 0, since = null, lastInput = Date.now();
  const active = () => document.visibilityState === 'visible' && Date.now() - lastInput < 60000;
  setInterval(() => {
    const now = Date.now();
    if (active()) { if (since !== null) acc += now - since; since = now; } else { since = null; }
  }, 500);
  ['keydown', 'mousedown', 'mousemove', 'wheel', 'touchstart'].forEach(
    (ev) => document.addEventListener(ev, () => { lastInput = Date.now(); }, {passive: true, capture: true}));
  window.__capevalActiveMs = () => Math.round(acc);
  window.__capevalResetActive = () => { acc = 0; since = null; };
  window.__capevalLogout = async () => {
    const s = await orig('session');
    if (s.ok) {
      const {csrf} = await s.json();
      await orig('logout', {method: 'POST', headers: {'X-CSRF-Token': csrf, 'Accept': 'application/json'}});
    }
    window.location.replace('login');
  };
})();
"""


def head_html() -> str:
    return f"<script>{RELOGIN_JS}</script>"


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
    if (document.getElementById('relogin')) return;
    const t = e.target;
    const typing = t && (t.tagName === 'TEXTAREA' ||
                         (t.tagName === 'INPUT' && !['radio', 'checkbox'].includes(t.type)));
    if (typing) return;
    const ann = document.querySelector('#annotate');
    if (!ann || ann.offsetParent === null) return;
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


def _bar(s: Screen) -> str:
    pct = 100.0 * s.completed / s.total if s.total else 0.0
    return f'<div class="cv-bar" title="{s.completed} of {s.total} done"><div style="width:{pct:.1f}%"></div></div>'


def _image_value(s: Screen, base: str) -> dict[str, Any]:
    """The Image component's value, already in Gradio's wire form: the server's own image route by opaque item id,
    as an absolute URL so Gradio passes it through (no file path, no copy in Gradio's cache)."""
    suffix = Path(s.image_path or "").suffix.lower() or ".jpg"
    url = f"{base}/image/{s.public_id}"
    return {"path": url, "url": url, "orig_name": f"image{suffix}",
            "mime_type": None, "size": None, "is_stream": False, "meta": {"_type": "gradio.FileData"}}


def _base(request: gr.Request) -> str:
    """The app's URL for this request, as the server guard computed it."""
    inner = getattr(request, "request", None)
    scope = getattr(inner, "scope", None) or {}
    return str(scope.get("capeval_base", "")).rstrip("/")


def _choice_label(value: str, text: str, key: str) -> str:
    return f"[{key.upper()}] {value}: {text}"


def build_app(service: Service) -> gr.Blocks:
    """The annotator page and, for admin logins, the researcher view."""
    from annotation.server import mark_refusal

    rubric = service.campaign.rubric
    crit_components: list[gr.components.Component] = []
    reason_components: list[gr.components.Component] = []

    with gr.Blocks(title=f"{service.campaign.name} · caption rating", analytics_enabled=False) as demo:
        with gr.Row(elem_id="topbar", equal_height=True):
            progress = gr.Markdown("", elem_id="progress", scale=3, min_width=260)
            bar = gr.HTML("", elem_id="bar", scale=2, min_width=120, padding=False)
            status = gr.Markdown("", elem_id="status", scale=3, min_width=200)
            instr_btn = gr.Button("Instructions", elem_id="instructions_btn", size="sm", scale=0, min_width=110)
            logout_btn = gr.Button("Log out", elem_id="logout", size="sm", scale=0, min_width=90)
        with gr.Column(visible=False, elem_id="intro") as intro_col:
            intro_md = gr.Markdown("", elem_id="intro_text")
            start_btn = gr.Button("I agree, start" if service.campaign.consent else "Start rating",
                                  variant="primary", elem_id="start")
            gr.Markdown("## How to rate\n\n" + rubric.help_markdown(), elem_id="intro_help")
        with gr.Column(visible=False, elem_id="annotate") as annotate_col:
            with gr.Row():
                with gr.Column(scale=3):
                    image = gr.Image(label="Image", type="filepath", interactive=False, buttons=[],
                                     elem_id="image", show_label=False)
                with gr.Column(scale=2, elem_classes="rubric"):
                    caption_a = gr.Textbox(label="Caption A" if rubric.pairwise else "Caption", interactive=False,
                                           lines=1, max_lines=8, elem_id="caption")
                    caption_b = gr.Textbox(label="Caption B", interactive=False, lines=1, max_lines=8,
                                           elem_id="caption_b", visible=rubric.pairwise)
                    flag_row = None
                    for c in rubric.criteria:
                        if c.kind == "flag":
                            if flag_row is None:
                                flag_row = gr.Row()
                            with flag_row:
                                comp = gr.Checkbox(label=f"[{c.keys[0].upper()}] {c.label}", value=False,
                                                   elem_id=c.name, min_width=160)
                        else:
                            keys = " ".join(k.upper() for k in c.keys)
                            comp = gr.Radio(choices=[(_choice_label(v, text, k), v)
                                                     for (v, text), k in zip(c.levels, c.keys)],
                                            label=f"{c.label} (keys {keys})", value=None, elem_id=c.name)
                        crit_components.append(comp)
                        # always rendered, empty unless a rating is missing (CSS hides it then): plain string
                        # outputs, because every gr.update() costs Gradio a component rebuild per response
                        reason_components.append(gr.Markdown("", elem_id=f"{c.name}_reason", elem_classes="reason",
                                                             padding=False, container=False))
                    comment = gr.Textbox(label="Comment (optional)", show_label=False, lines=1, max_lines=4,
                                         max_length=2000, placeholder="Comment (optional)", elem_id="comment")
                    with gr.Row():
                        back_btn = gr.Button("← Previous item", elem_id="back", size="sm")
                        submit_btn = gr.Button("Submit [Enter]", variant="primary", elem_id="submit")
                    with gr.Row():
                        broken_btn = gr.Button("Image not showing? Report it", elem_id="broken", size="sm",
                                               variant="secondary")
                        help_acc = gr.Accordion("How to rate", open=False, elem_id="help")
                        with help_acc:
                            gr.Markdown(rubric.help_markdown())
                    with gr.Row(visible=False, elem_id="confirm_broken") as confirm_row:
                        gr.Markdown("Report this image as broken? The item is then skipped.")
                        confirm_yes = gr.Button("Yes, report broken image", variant="stop", size="sm",
                                                elem_id="broken_yes")
                        confirm_no = gr.Button("Cancel", size="sm", elem_id="broken_no")
                    token = gr.Textbox(visible="hidden", elem_id="item_token", label="item")
                    active_ms = gr.Textbox(visible="hidden", elem_id="active_ms", label="active")
        with gr.Column(visible=False, elem_id="done_col") as done_col:
            done_md = gr.Markdown("", elem_id="done")
            review_btn = gr.Button("Review or change my ratings", elem_id="review", size="sm")
        denied_md = gr.Markdown("", visible=False, elem_id="denied")

        with gr.Column(visible=False, elem_id="admin") as admin_col:
            gr.Markdown("## Researcher view")
            refresh_btn = gr.Button("Refresh", elem_id="refresh")
            per_ann = gr.Dataframe(label="Per annotator: progress, gold accuracy (share of gold items answered as "
                                   "expected), alpha of the others without them, share of their most used value, "
                                   "median seconds per item, flags", interactive=False, elem_id="per_annotator")
            per_sys = gr.Dataframe(label="Progress per system", interactive=False, elem_id="per_system")
            alpha_df = gr.Dataframe(label="Krippendorff's alpha (ordinal for scales, nominal for flags/choices), "
                                    "95% bootstrap CI over items", interactive=False, elem_id="alpha")
            kappa_df = gr.Dataframe(label="Weighted Cohen's kappa (quadratic) per pair of annotators",
                                    interactive=False, elem_id="kappa")
            blind_df = gr.Dataframe(label="Blinding: how distinguishable the systems' captions still are "
                                    "(length in words as shown; capitals and final punctuation as stored and as "
                                    "shown)", interactive=False, elem_id="blinding")
            comments_df = gr.Dataframe(label="Comments", interactive=False, elem_id="comments")
            broken_df = gr.Dataframe(label="Broken-image reports", interactive=False, elem_id="broken_reports")
            with gr.Row():
                fmt = gr.Radio(["csv", "jsonl", "parquet"], value="csv", label="Export format", elem_id="export_format")
                export_btn = gr.Button("Export judgments", elem_id="export")
            export_file = gr.File(label="Judgments (for capeval correlate)", elem_id="export_file", interactive=False)

        layout = [annotate_col, intro_col, done_col]
        # What changes from one item to the next: plain values only, because every gr.update()/gr.skip() costs
        # Gradio a component rebuild per response. Layout changes (intro, done page) are separate, rarer events.
        core_outputs = [progress, bar, status, image, caption_a, caption_b, token, *crit_components, comment,
                        *reason_components]
        full_outputs = [*layout, *core_outputs, confirm_row, done_md, intro_md]
        admin_outputs = [admin_col, per_ann, per_sys, alpha_df, kappa_df, blind_df, comments_df, broken_df]
        no_reasons = [""] * len(reason_components)

        def render(s: Screen, base: str) -> list[Any]:
            """Core outputs for one screen (`base`: the app's URL for image links)."""
            if s.done:
                empty = [False if c.kind == "flag" else None for c in rubric.criteria]
                return [s.progress, _bar(s), s.message, None, "", "", "", *empty, "", *no_reasons]
            prev = s.previous or {}
            values = []
            for c in rubric.criteria:
                v = prev.get(c.name)
                values.append(bool(v) if c.kind == "flag" else (str(v) if v is not None else None))
            caps = list(s.captions) + [""] * (2 - len(s.captions))
            return [s.progress, _bar(s), s.message, _image_value(s, base), caps[0], caps[1], s.public_id, *values,
                    s.comment, *no_reasons]

        def render_full(s: Screen, base: str) -> list[Any]:
            """Layout plus core outputs: the annotate column, or the completion page."""
            if s.done:
                text = (f"## All done, thank you!\n\nYou have completed all {s.total} items. Your ratings are saved. "
                        "You can review or change them below.")
                lay = [gr.update(visible=False), gr.update(visible=False), gr.update(visible=True)]
                return [*lay, *render(s, base), gr.update(visible=False), text, gr.skip()]
            lay = [gr.update(visible=True), gr.update(visible=False), gr.update(visible=False)]
            return [*lay, *render(s, base), gr.update(visible=False), gr.skip(), gr.skip()]

        def render_intro(text: str) -> list[Any]:
            return [gr.update(visible=False), gr.update(visible=True), gr.update(visible=False),
                    *[gr.skip()] * (len(full_outputs) - 4), text]

        def admin_render(user: str | None) -> list[Any]:
            summ = service.summary(user)
            return [gr.update(visible=True), summ.per_annotator, summ.per_system,
                    summ.alpha.drop(columns=["alpha", "ci_low", "ci_high"]).rename(columns={"shown": "alpha [95% CI]"}),
                    summ.kappa, service.blinding(user), summ.comments, summ.broken_reports]

        def call(fn, *args):
            try:
                return fn(*args)
            except CapevalError as exc:
                mark_refusal(403 if isinstance(exc, Forbidden) else 409 if "reload" in str(exc) else 400)
                raise gr.Error(str(exc), print_exception=False) from None

        def on_load(request: gr.Request):
            """Annotator page (or the refusal for unknown logins); admins get the researcher view from on_admin_load."""
            user = request.username
            role = service.role(user)
            if role == "annotator":
                intro = service.intro(user)
                screen = render_intro(intro) if intro else render_full(service.current(user), _base(request))
                return [*screen, gr.update(visible=False), gr.skip()]
            hidden = [gr.update(visible=False)] * 3
            denied = gr.skip() if role == "admin" else gr.update(value="This login is not part of this campaign.",
                                                                 visible=True)
            return [*hidden, *[gr.skip()] * (len(full_outputs) - 3), denied, gr.update(visible=False)]

        def on_admin_load(request: gr.Request):
            if service.role(request.username) != "admin":
                return [gr.skip()] * len(admin_outputs)
            return admin_render(request.username)

        def on_current(request: gr.Request):
            return render(call(service.current, request.username), _base(request))

        def on_layout(request: gr.Request):
            return render_full(call(service.current, request.username), _base(request))

        def on_submit(request: gr.Request, item: str, *rest: Any):
            *vals, note, active = rest
            raw = {c.name: v for c, v in zip(rubric.criteria, vals)}
            missing = rubric.missing(raw)
            if missing:  # the reason next to each field; nothing else on the page changes
                names = ", ".join(c.label.split(":")[0] for c in missing)
                reasons = [f"⚠ Choose a rating for {c.label.split(':')[0]}" if c in missing else ""
                           for c in rubric.criteria]
                out = [gr.skip()] * len(core_outputs)
                out[core_outputs.index(status)] = f"**Not saved:** choose a rating for {names}."
                start = core_outputs.index(reason_components[0])
                out[start:start + len(reasons)] = reasons
                return out
            _, screen = call(service.submit, request.username, item, raw, note, active)
            return render(screen, _base(request))

        def on_broken(item: str, note: str, request: gr.Request):
            _, screen = call(service.report_broken, request.username, item, note)
            return [*render(screen, _base(request)), gr.update(visible=False)]

        def on_back(item: str, request: gr.Request):
            return render(call(service.back, request.username, item or None), _base(request))

        def on_review(item: str, request: gr.Request):
            return render_full(call(service.back, request.username, item or None), _base(request))

        def on_start(request: gr.Request):
            return render_full(call(service.agree, request.username), _base(request))

        def on_instructions(request: gr.Request):
            if service.role(request.username) != "annotator":
                return [gr.skip()] * len(full_outputs)
            return render_intro(service.intro_markdown())

        def on_refresh(request: gr.Request):
            return call(admin_render, request.username)

        def on_export(kind: str, request: gr.Request):
            if kind not in ("csv", "jsonl", "parquet"):
                mark_refusal(400)
                raise gr.Error("export format must be csv, jsonl or parquet")
            out = service_cache(demo) / "exports" / f"judgments.{kind}"
            out.parent.mkdir(parents=True, exist_ok=True)
            return str(call(service.export, request.username, out))

        private = {"api_visibility": "private"}
        fast = {"queue": False, "postprocess": False, "preprocess": False}  # values are already in wire form
        demo.load(on_load, None, [*full_outputs, denied_md, instr_btn], **fast, **private)
        demo.load(on_admin_load, None, admin_outputs, queue=False, **private)
        current_btn = gr.Button(visible=False)
        current_btn.click(on_current, None, core_outputs, api_name="current", **fast)
        # after the last item the page switches to the completion screen (one extra request, once)
        layout_btn = gr.Button(visible="hidden", elem_id="show_done")
        layout_btn.click(on_layout, None, full_outputs, **fast, **private)
        done_js = """() => { setTimeout(() => {
  const t = document.querySelector('#item_token textarea, #item_token input');
  const ann = document.querySelector('#annotate');
  if (t && !t.value && ann && ann.offsetParent !== null) document.querySelector('#show_done').click();
}, 50); }"""
        # Annotator events skip Gradio's queue: they are short database calls, and the queue's SSE round trip
        # would dominate their latency. Writes stay serialised (and idempotent) in the store.
        n_in = 1 + len(crit_components) + 2
        submit_js = """(...args) => {
  const n = %d; const need = %s;
  const complete = need.every((i) => args[i] !== null && args[i] !== undefined && args[i] !== '');
  args[n - 1] = String(window.__capevalActiveMs ? window.__capevalActiveMs() : '');
  if (complete && window.__capevalResetActive) window.__capevalResetActive();
  return args;
}""" % (n_in, json.dumps([1 + i for i, c in enumerate(rubric.criteria) if c.required]))
        submit_btn.click(on_submit, [token, *crit_components, comment, active_ms], core_outputs, api_name="submit",
                         trigger_mode="once", js=submit_js, **fast).then(None, None, None, js=done_js,
                                                                              **private)
        broken_btn.click(lambda: gr.update(visible=True), None, confirm_row, queue=False, **private)
        confirm_no.click(lambda: gr.update(visible=False), None, confirm_row, queue=False, **private)
        confirm_yes.click(on_broken, [token, comment], [*core_outputs, confirm_row], api_name="report_broken",
                          trigger_mode="once", **fast).then(None, None, None, js=done_js, **private)
        back_btn.click(on_back, [token], core_outputs, api_name="back", trigger_mode="once", **fast)
        review_btn.click(on_review, [token], full_outputs, **fast, **private)
        start_btn.click(on_start, None, full_outputs, api_name="start", **fast)
        instr_btn.click(on_instructions, None, full_outputs, **fast, **private)
        logout_btn.click(None, None, None, js="() => { window.__capevalLogout(); }", **private)
        refresh_btn.click(on_refresh, None, admin_outputs, api_name="admin_summary", queue=False)
        export_btn.click(on_export, [fmt], [export_file], api_name="admin_export", queue=False)
    return demo


def service_cache(demo: gr.Blocks) -> Path:
    return Path(demo.GRADIO_CACHE)


def _use_cache_dir(demo: gr.Blocks, folder: Path) -> None:
    """Point Gradio's per-block file cache (served copies of images, exports) at this server's private folder."""
    demo.GRADIO_CACHE = str(folder)
    for block in demo.blocks.values():
        block.GRADIO_CACHE = str(folder)


@dataclass
class Running:
    """A server started by `launch`: its URL, and `close()` to stop it and remove its temporary files."""

    url: str
    demo: gr.Blocks
    server: Any
    thread: threading.Thread | None
    cache_dir: Path

    previous_temp_dir: str | None = None

    def close(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        _restore_temp_dir(self.previous_temp_dir)


def _restore_temp_dir(previous: str | None) -> None:
    if previous is None:
        os.environ.pop("GRADIO_TEMP_DIR", None)
    else:
        os.environ["GRADIO_TEMP_DIR"] = previous


def launch(service: Service, *, host: str = "127.0.0.1", port: int | None = 7860, prevent_thread_lock: bool = False,
           quiet: bool = False, trust_proxy: bool = False, secure_cookies: bool | None = None,
           root_path: str = "") -> Running:
    """Start the server (login required; offline; only campaign images are served). With `prevent_thread_lock` it
    runs in a background thread and returns at once; otherwise it serves until stopped (Ctrl-C, SIGTERM), then
    removes its temporary files."""
    import uvicorn

    from annotation.example import free_port
    from annotation.server import Web, WebOptions, bind_socket, build_server, private_cache_dir

    sock = bind_socket(host, port if port is not None else free_port(host))
    cache = private_cache_dir()
    # Gradio copies every file it serves into its cache; some copies are made by per-session component copies that
    # only read GRADIO_TEMP_DIR, so the server's private folder is named there while it runs (restored on close).
    previous_temp = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(cache)
    try:
        demo = build_app(service)
        _use_cache_dir(demo, cache)
        web = Web(service, WebOptions(trust_proxy=trust_proxy, secure_cookies=secure_cookies, root_path=root_path),
                  cache)
        app = build_server(service, demo, web)
        config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=trust_proxy,
                                forwarded_allow_ips="*" if trust_proxy else None, timeout_graceful_shutdown=5,
                                root_path=root_path)
        server = uvicorn.Server(config)
        shown_host = f"[{host}]" if ":" in host else host
        url = f"http://{shown_host}:{sock.getsockname()[1]}/"
        if not quiet:
            print(f"serving {service.campaign.name!r} at {url}", flush=True)
        if prevent_thread_lock:
            th = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
            th.start()
            import time

            t0 = time.time()
            while not server.started and th.is_alive() and time.time() - t0 < 60:
                time.sleep(0.02)
            return Running(url, demo, server, th, cache, previous_temp)
        import signal

        def _stop(signum, _frame):  # noqa: ANN001 - uvicorn re-raises SIGTERM after its graceful shutdown
            raise SystemExit(128 + signum)

        old = signal.signal(signal.SIGTERM, _stop) if threading.current_thread() is threading.main_thread() else None
        try:
            server.run(sockets=[sock])
        finally:
            shutil.rmtree(cache, ignore_errors=True)
            _restore_temp_dir(previous_temp)
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        return Running(url, demo, server, None, cache, previous_temp)
    except BaseException:
        shutil.rmtree(cache, ignore_errors=True)
        _restore_temp_dir(previous_temp)
        sock.close()
        raise
