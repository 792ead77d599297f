"""Crowdsourced verification: task export, the labelling page, import and consensus (issue 5)."""
