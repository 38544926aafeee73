-- wrk's script for `POST /items`: one small item per request, then the report hook of wrk_report.lua (beside it).
wrk.method = "POST"
wrk.body = '{"name": "bench", "quantity": 1}'
wrk.headers["Content-Type"] = "application/json"
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "wrk_report.lua")
