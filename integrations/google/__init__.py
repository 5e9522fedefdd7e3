"""Google Workspace: OAuth, and plain synchronous wrappers over Gmail, Calendar and Drive."""
