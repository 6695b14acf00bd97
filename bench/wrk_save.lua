-- wrk script for a state SAVE: POSTs the file named by $BENCH_SAVE_BODY_FILE (a JSON array of
-- state items) with Content-Type application/json, and reports like wrk_report.lua (which it
-- loads from $BENCH_DIR).
local f = assert(io.open(os.getenv("BENCH_SAVE_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
dofile(os.getenv("BENCH_DIR") .. "/wrk_report.lua")
