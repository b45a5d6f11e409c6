-- hostile: string.format with the widest widths and precisions, %q of huge and odd values, %a, invalid conversions: errors are caught, nothing reaches host memory (seccomp/rlimits: string.format)
-- expect: harmless
return {
  ["return.created"] = function()
    local big = ("q"):rep(1 << 20)
    for _, f in ipairs({ "%99d", "%.99f", "%99.99f", "%-99s", "%099x", "%a", "%5000s", "%.1000f", "%q", "%99q", "%i", "%c" }) do
      for _, v in ipairs({ 1e308, -1e308, math.mininteger, 0 / 0, 1 / 0, big, "\0\255" }) do pcall(string.format, f, v) end
    end
    assert(#string.format("%q", big) > 0)
  end,
}
