from pathlib import Path

SYMBOLS = Path(__file__).resolve().parents[1] / "fixtures" / "symbols"
TEST_APP_SYM = SYMBOLS / "symbols/test_app.pdb/5A9832E5287241C1838ED98914E9B7FF1/test_app.sym"
CRASH_CLIENT_SYM = (
    SYMBOLS / "symbols/crash-client/509C0610949836F7B70BD88BCF03E5400/crash-client.sym"
)
MACOS_DUMP = SYMBOLS / "pipeline-inlines-macos-segv.dmp"
WINDOWS_DUMP = SYMBOLS.parent / "minidumps" / "windows-x86-breakpad-access-violation.dmp"
