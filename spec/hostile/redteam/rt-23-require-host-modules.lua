-- hostile: requires host-only and undocumented modules (the CLI's installer, the busted kit, embedded defaults, native, debug, io, package): only the documented modules may load; any other that loads is an escape (module allow-list)
-- expect: harmless
local NAMES = { "returnflow.cli.install", "returnflow.cli.templates", "returnflow.cli.catalogue", "returnflow.testing",
                "returnflow.native", "returnflow.runtime", "debug", "io", "package", "os", "lpeg", "cjson.safe", "ffi",
                "returnflow.json.x", "returnflow/../x" }
return {
  ["return.created"] = function(_, out)
    local got = {}
    for _, n in ipairs(NAMES) do
      local ok, m = pcall(require, n)
      if ok and type(m) == "table" and (n:find("cli") or n == "debug" or n == "io" or n == "package" or n == "os"
                                         or n:find("native") or n == "returnflow.runtime") then got[#got + 1] = n end
    end
    if #got > 0 then out:fail("escaped: required " .. table.concat(got, ", ")) end
  end,
}
