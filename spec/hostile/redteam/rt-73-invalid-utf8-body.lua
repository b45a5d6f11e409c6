-- hostile: event properties with invalid UTF-8 (utf8.char of 0x7FFFFFFF, surrogates, lone bytes, overlongs): a body must never carry bytes that break the parent's framing or Klaviyo's JSON; the encoder refuses them (protocol: invalid UTF-8 in bodies)
-- expect: failed
-- reason: UTF
return {
  ["return.created"] = function(_, out)
    out:track("Bad", { a = utf8.char(0x7FFFFFFF), b = "\237\160\128", c = "\255", d = "\192\128" })
  end,
}
