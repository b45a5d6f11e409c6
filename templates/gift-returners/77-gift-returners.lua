-- Gift returners: puts whoever returns a gift into the segment tag "gift-returner" (the list profile
-- property returnflow_segments), which the "Gift returners" segment reads. The profile is the gift's
-- recipient, the person who started the gift return.
return {
  ["return.created"] = function(ret, out)
    if ret.is_gift_return == true then out:segment("gift-returner") end
  end,
}
