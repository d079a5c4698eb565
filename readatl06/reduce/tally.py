"""What rank 0 reports of a ``reduce`` run, kept by each rank as it goes and combined once.

A rank's part file holds each granule's whole record (the manifest is made of them); what the
report needs of them is a tally whose size does not grow with the granules: counts by status,
points, seconds per stage, bytes read, per ``--vars`` variable the granules that looked for it and
found it, and the granules reduced (their plan indices, 8 bytes each). Of the lines the report
prints (a failure, a note) only the first ``LINES`` in granule order are kept as text, the rest
counted: a run where every granule has a note (or fails) holds no text per granule either; every
granule's error and notes stay in its manifest record. Rank 0 gathers one tally per rank, never a
record per granule (docs/continent.md, "Memory per rank").
"""
import array
import heapq

STATUSES = ("done", "empty", "failed")
STAGES = ("read", "filter", "write")
LINES = 200                                          # lines of failures and notes a tally keeps as text


class Tally:
    def __init__(self):
        self.count = dict.fromkeys(STATUSES, 0)
        self.points = 0                              # of done granules
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self.bytes_read = 0
        self.vars = {}                               # --vars source -> [granules looked, found]
        self.lines = []                              # the first LINES [(granule, k, "FAILED ..." | "note ...")]
        self.line_count = 0                          # lines there were: kept or not
        self.reduced = array.array("q")              # plan indices of the done and empty granules

    def __len__(self):
        return sum(self.count.values())

    def _keep(self, lines):
        """Add ``lines``, keeping only the first LINES of all in granule order (a granule's in their order)."""
        self.line_count += len(lines)
        self.lines.extend(lines)
        if len(self.lines) > 2 * LINES:
            self.lines = heapq.nsmallest(LINES, self.lines)

    def shown(self):
        """The lines to print, in granule order, and how many more there were."""
        lines = sorted(self.lines)[:LINES]
        return [line for _, _, line in lines], self.line_count - len(lines)

    def add(self, i, record):
        """Count plan item ``i``'s ``record``."""
        status, name = record["status"], record["granule"]
        self.count[status] += 1
        if status == "done":
            self.points += int(record["points"])
        if status != "failed":
            self.reduced.append(i)
        lines = [f"FAILED {record['error']}"] if status == "failed" else []
        self._keep([(name, k, line) for k, line in
                    enumerate(lines + [f"note {name}: {note}" for note in record.get("notes", [])])])
        for stage, seconds in record.get("timings", {}).items():
            if stage in self.seconds:
                self.seconds[stage] += seconds
        self.bytes_read += record.get("bytes_read", 0)
        for source, found in record.get("vars", {}).items():
            seen = self.vars.setdefault(source, [0, 0])
            seen[0] += 1
            seen[1] += bool(found)

    @classmethod
    def combined(cls, tallies):
        """One tally of every rank's (the lines in granule order, each granule's in its order)."""
        out = cls()
        for t in tallies:
            for s in STATUSES:
                out.count[s] += t.count[s]
            for s in STAGES:
                out.seconds[s] += t.seconds[s]
            out.points += t.points
            out.bytes_read += t.bytes_read
            for source, (looked, found) in t.vars.items():
                seen = out.vars.setdefault(source, [0, 0])
                seen[0] += looked
                seen[1] += found
            out._keep(t.lines)
            out.line_count += t.line_count - len(t.lines)
            out.reduced.extend(t.reduced)
        out.reduced = array.array("q", sorted(out.reduced))
        return out

    def vars_found_nowhere(self):
        """``--vars`` variables that no reduced granule has (where points were kept): one line each."""
        return [f"--vars {s}: found in no granule of this run (looked for in {looked})"
                for s, (looked, found) in sorted(self.vars.items()) if not found]
