"""One screen per file; each is a mode of BorescopeApp."""
