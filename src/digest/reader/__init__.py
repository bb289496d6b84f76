"""The reading side, in the manner of Miniflux's internal/reader/: ``fetch`` (conditional GETs
through the guarded client), ``parse`` (feed bytes -> items, on a process pool) and ``opml``
(subscription lists in and out)."""
