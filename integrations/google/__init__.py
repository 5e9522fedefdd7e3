"""Google Workspace as a provider (``provider``, registered in ``integrations.registry``): OAuth, its
gated actions (``actions``, ``execution``), the reads and drafts sub-agents run (``ops``), and plain
synchronous wrappers over Gmail, Calendar and Drive."""
