"""Crowdsourced verification: HIT export, the labelling page, answer import and consensus."""
