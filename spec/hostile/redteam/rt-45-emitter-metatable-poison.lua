-- hostile: rewrites the emitter's methods through getmetatable(out) (track renames the metric, remember is dropped), then fails its event: the next events' emitters must be the host's (state leak: host metatables)
-- expect: failed
-- reason: planted
return {
  ["return.created"] = function(_, out)
    pcall(function()
      local Out = getmetatable(out)
      local track = Out.track
      Out.track = function(self, metric, ...) return track(self, "PWNED " .. tostring(metric), ...) end
      Out.remember = function(self) return self end
      Out.__index = Out
    end)
    out:fail("planted")
  end,
}
