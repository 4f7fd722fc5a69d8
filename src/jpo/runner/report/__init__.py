"""The one report of a run (`jpo run` and `jpo demo` alike): results.md (a table like the paper's Table 5, beside
the paper's numbers where the recipe gives them), results.json, details.json, interplay.json, provenance.json and
PNG plots.

    results.py     write_report: the results dict assembled from the units' files, and every file written from it
    statistics.py  the numbers of each section: win-rate rows, findings, selection grid, sensitivity checks, equal
                   budget, spread over seeds
    online.py      the online section's numbers: cost per round, win-rate curves, online JPO against online DPO
    markdown.py    results.md, every section's text (the online section's too)
    plots.py       the PNG plots
"""

from jpo.runner.report.results import write_report

__all__ = ["write_report"]
