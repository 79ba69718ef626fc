"""What ``kqueue.job`` builds its public API from: the codec, dispatch options, handles, context.

Layout, imports running down: ``codec`` (messages and finished records as JSON) < ``context``
(``current_job``, set by the tiers) < ``options`` (validated dispatch options) < ``handle``
(``JobHandle``: status, info, result, cancel). Below the tiers, above the backends.
"""
