"""The download stage: candidates -> a verified, normalised image store and a ledger of every URL.

One input shard (``candidates/part-N.parquet``) becomes one image shard
(``images/shard-N.parquet``), one ledger shard (``ledger/shard-N.parquet``) and one stats
record, written by ``shard.download_shard``; ``executors`` run shards on local processes
or Ray; ``fetch`` talks HTTP, ``images`` decodes and normalises, ``safety`` decides which
URLs and addresses may be contacted.
"""
