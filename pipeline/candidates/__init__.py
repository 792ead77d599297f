"""Candidate collection: turn the classes of synsets.parquet into candidate image URLs.

One module per source (``urllist``, ``commons``, ``openverse``, ``flickr``, ``demo``); the
search APIs share ``search.ApiClient`` for paging politely.
"""
