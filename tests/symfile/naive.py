"""An in-memory model of a `.sym` file's lookups, to check the index against."""

from chalicelib.symfile import records as rec


def _drop_overlaps(items):
    kept, last_end = [], -1
    for item in sorted(items):
        start, size = item[0], item[1]
        if start < last_end:
            continue
        last_end = start + size
        kept.append(item)
    return kept


def _containing(items, address):
    for item in items:
        if item[0] <= address < item[0] + item[1]:
            return item
    return None


class NaiveSymbols:
    def __init__(self, text: str) -> None:
        funcs, lines, self.inlines, publics, cfi = [], [], [], [], []
        self.files, self.origins = {}, {}
        current_cfi = None
        for number, line in enumerate(text.splitlines(), 1):
            record = rec.parse_record(line, number)
            if isinstance(record, rec.Func) and record.size:
                funcs.append((record.address, record.size, record.parameter_size, number,
                              record.name))
            elif isinstance(record, rec.LineRecord) and record.size:
                lines.append(tuple(record))
            elif isinstance(record, rec.Inline):
                for address, size in record.ranges:
                    self.inlines.append((record.depth, address, size, record.call_line,
                                         record.call_file, record.origin))
            elif isinstance(record, rec.Public):
                publics.append((record.address, record.parameter_size, number, record.name))
            elif isinstance(record, rec.FileRecord):
                self.files[record.id] = record.name
            elif isinstance(record, rec.InlineOrigin):
                self.origins[record.id] = record.name
            elif isinstance(record, rec.CfiInit):
                current_cfi = [record.address, record.size, number, record.rules, []]
                if record.size:
                    cfi.append(current_cfi)
            elif isinstance(record, rec.CfiDelta):
                current_cfi[4].append((record.address, record.rules))
        self.funcs = _drop_overlaps(funcs)
        self.lines = _drop_overlaps(lines)
        self.publics = sorted(publics)
        self.cfi = _drop_overlaps([tuple(c[:4]) + (tuple(sorted(c[4])),) for c in cfi])

    def find_func(self, address):
        found = _containing(self.funcs, address)
        return None if found is None else (found[0], found[1], found[2], found[4])

    def find_line(self, address):
        return _containing(self.lines, address)

    def find_inline(self, depth, address):
        before = [i for i in self.inlines if (i[0], i[1]) <= (depth, address)]
        if not before:
            return None
        best = max(before)
        if best[0] == depth and best[1] <= address < best[1] + best[2]:
            return best
        return None

    def find_public(self, address):
        before = [p for p in self.publics if p[0] <= address]
        return None if not before else (before[-1][0], before[-1][1], before[-1][3])

    def find_cfi(self, address):
        found = _containing(self.cfi, address)
        return None if found is None else (found[0], found[1], found[3], found[4])
