"""The UI's stylesheet (passed to ``mount_gradio_app``; Gradio 6 takes theme and CSS there)."""

from __future__ import annotations

CSS = """
.gradio-container { max-width: 100% !important; }
#sidebar .llm-badge { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px;
  font-size: 13px; line-height: 1.4; margin-top: 8px; }
#sidebar .llm-badge[data-reachable="true"] .llm-state { color: #15803d; font-weight: 600; }
#sidebar .llm-badge[data-reachable="false"] .llm-state { color: #b91c1c; font-weight: 600; }
#sidebar .llm-provider { text-transform: uppercase; letter-spacing: .04em; font-size: 11px; opacity: .75; }
#sidebar .llm-model { font-family: var(--font-mono); font-size: 12px; word-break: break-all; }
#chat-send, #chat-new, #settings-test, #settings-save, #settings-reload, #history-search, #tasks-search,
#agents-retry, #memory-upload, #memory-search, #memory-docs-refresh, #fb-up, #fb-down, #approvals-refresh,
#approval-approve, #approval-reject, #approval-save, #policy-save, #audit-search, #google-connect,
#google-disconnect { white-space: nowrap; }
.nav-btn { justify-content: flex-start !important; }
.disclosure { justify-content: flex-start !important; width: fit-content !important; min-width: 0 !important; }
.plan, .drafts { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 10px 12px;
  background: var(--background-fill-secondary); font-size: 14px; }
.drafts { margin-top: 10px; }
.plan-empty { opacity: .7; }
.plan-head { display: flex; justify-content: space-between; align-items: baseline; margin-bottom: 6px; }
.plan-count { font-size: 12px; opacity: .75; }
.plan-goal { font-style: italic; margin: 2px 0 8px; opacity: .85; }
.plan details { border-top: 1px solid var(--border-color-primary); padding: 4px 0; }
.plan summary, .drafts summary { cursor: pointer; display: flex; gap: 8px; align-items: baseline; list-style: none; }
.plan summary::-webkit-details-marker { display: none; }
.plan .sym { width: 1.2em; text-align: center; font-weight: 700; }
.plan .step[data-status="done"] .sym { color: #15803d; }
.plan .step[data-status="running"] .sym { color: #2563eb; }
.plan .step[data-status="dead"] .sym, .plan .step[data-status="failed"] .sym,
.plan .step[data-status="retried"] .sym { color: #b91c1c; }
.plan .agent { font-family: var(--font-mono); font-size: 12px; padding: 0 6px; border-radius: 6px;
  background: var(--background-fill-primary); border: 1px solid var(--border-color-primary); }
.plan summary { flex-wrap: wrap; row-gap: 2px; }
.plan .instr { order: 3; flex-basis: 100%; padding-left: calc(1.2em + 8px); font-size: 13px; opacity: .9;
  overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.plan details[open] .instr { display: none; }
.plan .meta { margin-left: auto; font-size: 12px; opacity: .75; white-space: nowrap; }
.step-body { padding: 4px 0 6px 1.8em; }
.step-instr { font-size: 13px; opacity: .85; margin-bottom: 4px; }
.step-label { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; opacity: .7; }
.step-out, .step-err, .record pre { white-space: pre-wrap; word-break: break-word; font-size: 12px;
  margin: 2px 0 6px; padding: 6px 8px; border-radius: 6px; background: var(--background-fill-primary); }
.step-err { color: #b91c1c; }
.badge { font-size: 11px; padding: 0 6px; border-radius: 6px; background: #fef3c7; color: #92400e; }
.record h4 { margin: 12px 0 4px; }
.rec-meta, .rec-when { font-size: 12px; opacity: .75; }
.rec-msg { margin: 6px 0; }
.rec-table { border-collapse: collapse; font-size: 12px; width: 100%; margin: 4px 0 8px; }
.rec-table th, .rec-table td { border: 1px solid var(--border-color-primary); padding: 3px 6px; text-align: left;
  vertical-align: top; }
.integ th { width: 180px; }
.sources, .mem-stats, .doc-view, .upload-state { border: 1px solid var(--border-color-primary); border-radius: 10px;
  padding: 8px 12px; background: var(--background-fill-secondary); font-size: 14px; }
.sources { margin-top: 10px; }
.sources-none, .doc-empty { opacity: .75; }
.source { border-top: 1px solid var(--border-color-primary); padding: 5px 0; }
.src-line { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.src-coll { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; padding: 0 6px; border-radius: 6px;
  background: #e0e7ff; color: #3730a3; }
.source[data-collection="sops"] .src-coll { background: #dcfce7; color: #166534; }
.source[data-collection="learnings"] .src-coll { background: #fef3c7; color: #92400e; }
.src-title { font-weight: 600; }
.src-heading { font-size: 13px; opacity: .8; }
.src-score { margin-left: auto; font-family: var(--font-mono); font-size: 12px; opacity: .7; }
.src-api { font-size: 11px; opacity: .7; }
.src-snippet { font-size: 13px; opacity: .9; margin: 2px 0 0; white-space: pre-wrap; }
#feedback { margin-top: 10px; }
#feedback-row { align-items: center; }
#fb-result { padding: 0 10px; }
.mono textarea { font-family: var(--font-mono) !important; font-size: 12px !important; }
.mem-counts { display: flex; gap: 18px; flex-wrap: wrap; margin-bottom: 2px; }
.mem-count b { font-size: 18px; }
.upload-state[data-status="failed"], .upload-state[data-status="refused"] { color: #b91c1c; }
.upload-state[data-status="ready"], .upload-state[data-status="duplicate"] { color: #15803d; }
.upload-state progress { width: 220px; vertical-align: middle; margin-left: 8px; }
.upload-note { font-size: 12px; opacity: .8; }
.doc-view h3 { margin: 0 0 2px; }
.doc-text { white-space: pre-wrap; word-break: break-word; font-size: 12px; max-height: 420px; overflow: auto;
  margin: 6px 0 2px; padding: 6px 8px; border-radius: 6px; background: var(--background-fill-primary); }
.act-group-head { margin: 0 0 6px; }
.act { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px; margin: 6px 0;
  background: var(--background-fill-secondary); font-size: 14px; }
.act-head { display: flex; gap: 8px; align-items: baseline; flex-wrap: wrap; }
.act-summary { opacity: .85; }
.act-args { border: none !important; border-collapse: collapse; width: 100%; font-size: 13px; margin-top: 4px; }
.act-args th, .act-args td { border: none !important; border-top: 1px solid var(--border-color-primary) !important;
  background: transparent !important; vertical-align: top; }
.act-args th { width: 110px; text-align: left; font-weight: 600; padding: 2px 8px 2px 0; opacity: .8; }
.act-args td { padding: 2px 0; word-break: break-word; }
.act-text { white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: 0; padding: 6px 8px;
  max-height: 260px; overflow: auto; border-radius: 6px; background: var(--background-fill-primary); }
.act-none, .act-more { opacity: .7; font-size: 13px; }
.act-flag { font-size: 11px; font-weight: 600; border-radius: 4px; padding: 0 4px; color: #92400e; background: #fef3c7; }
.act-warn, .act-outlier { color: #92400e; background: #fef3c7; border-radius: 6px; padding: 4px 8px; margin: 4px 0; }
.act-outlier { color: #991b1b; background: #fee2e2; }
.act-recipients { margin: 2px 0 4px 18px; padding: 0; font-size: 13px; max-height: 220px; overflow: auto; }
.act-source, .act-diff-head { opacity: .8; font-size: 12px; }
.integ-box { border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 8px 12px;
  background: var(--background-fill-secondary); font-size: 14px; }
.integ-box[data-status="connected"] { color: #15803d; }
.integ-warn { color: #92400e; background: #fef3c7; border-radius: 8px; padding: 6px 10px; margin: 4px 0; }
.integ-waiting { font-weight: 600; margin-top: 4px; }
.integ-link { display: inline-block; padding: 6px 14px; border-radius: 8px; background: #4f46e5; color: #fff !important;
  font-weight: 600; text-decoration: none; }
"""
