"""CPaaS providers: overflow and fallback over their HTTP APIs (the routing issue)."""
