"""A fake Google on 127.0.0.1: ``fake_server.FakeGoogle`` (OAuth, Gmail, Calendar, Drive)."""
