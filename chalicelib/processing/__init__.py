"""Crash processing: what crashed, from a stored minidump, in minidump-stackwalk's JSON.

One module per stage, on the model of rust-minidump and Socorro's processor:

    minidump.py    read the dump: streams as plain values, every offset checked
    context.py     CPU contexts (x86, amd64, arm, arm64) as named registers
    reasons.py     crash reasons by name (signals, exception codes, EXC_*)
    unwind/        walk each thread's stack, one module per CPU
    symbols.py     the symbol provider interface the walker asks (and "no symbols")
    signature.py   the crash signature that groups reports
    processor.py   run the stages on one dump: the processed crash JSON
    worker.py      the local run's bounded pool of processing processes
    __main__.py    backfill: python -m chalicelib.processing --reprocess

None of these knows about HTTP; only processor.py's callers touch S3 (crash_store).
"""
