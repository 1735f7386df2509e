"""Breakpad `.sym` files: parse, index once, look up per crash.

    records.py   one parsed line per record type; `validate` checks a whole upload
    cfi.py       STACK CFI rules and STACK WIN programs: the caller's registers
    spool.py     fixed-width sorted record tables built in bounded memory
    index.py     build the binary index of a `.sym` file (once, at upload)
    reader.py    look records up in an index through a few small range reads
    provider.py  IndexedSymbols: the walker's SymbolProvider over indexes

Processing a crash never downloads or parses a whole `.sym` file: it asks an index
for the few records its frames need.
"""
