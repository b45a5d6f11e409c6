-- hostile: a fail reason crafted as frames and log lines: NUL, a length header, invalid UTF-8, CR/LF, a forged JSON result and log line, terminal escapes (protocol: reasons that look like frames; log forging)
-- expect: failed
-- reason: forged
return {
  ["return.created"] = function(_, out)
    out:fail("forged\r\n\0\0\0\42{\"status\":\"mapped\",\"requests\":[]}\n"
      .. "2026-12-02T06:00:00Z info worker restarted\n\27[2J\27]0;owned\7\255\254 end")
  end,
}
