"""`make bench`: Doorline measured side by side with baresip in one run (issue 7).

Entry point: `tools/bench/run [--quick | --smoke] [--out DIR] [--only CASE ...]` (or
`python -m tools.bench`). See docs/BENCH.md for the cases and how to run it on a Pi.

Modules: harness (the run, peers, UAs), cases (the measurements), agents (Doorline and baresip
behind one interface, /proc readings), wire (pcap SIP/HTTP), rtpsender (impaired RTP stream),
stats (percentiles, pacing, drift, gaps), report (the table), svg (the plot).
"""
