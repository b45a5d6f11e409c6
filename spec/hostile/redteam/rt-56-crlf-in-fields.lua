-- hostile: CR/LF, NUL-free control bytes and "@host" in every field a script names: metric, email, phone, external id, unique_id, list id, segment name, profile property keys: they may only ever appear JSON-escaped inside a body (exfiltration: CR/LF in metric names and profile fields)
-- expect: harmless
local evil = "x\r\nHost: 127.0.0.1:9\r\n\r\n@127.0.0.1:9/"
return {
  ["return.created"] = function(_, out)
    out:identify { email = "a" .. evil .. "@example.com", phone_number = "+1" .. evil, external_id = evil }
    out:profile { first_name = evil, properties = { [evil] = evil } }
    out:segment(evil)
    out:track("M" .. evil, { [evil] = evil }, { unique_id = evil })
    out:subscribe("L" .. evil)
  end,
}
