"""The draw-a-digit web playground: a local page and a small JSON API over firstnet's predict functions."""
