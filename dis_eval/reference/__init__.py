"""Reference numbers to show beside a user's runs: the paper's published Table 2
(:mod:`dis_eval.reference.paper`)."""
