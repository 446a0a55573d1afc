"""Benchmarks of the robocall app (issue 6): `python -m bench`, or `make bench`.

Each benchmark runs the real app (usually as its own process) beside its
baseline in the same run, in interleaved rounds, and returns rows for one
Markdown table. See bench/README.md. Nothing here is collected by pytest.
"""
