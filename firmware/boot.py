# boot.py — runs before main.py at every start. Deliberately empty: everything that can go
# wrong belongs in main.py, where a crash is counted and ends in a reset (not a dead REPL).
