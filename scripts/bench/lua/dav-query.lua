local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
package.path = here .. "?.lua;" .. package.path
local b = require("common")
setup, init, done = b.setup, b.init, b.done

-- A CalDAV client's calendar-query of its 1,000-task list (issue 70): a SUMMARY text-match
-- and DESCRIPTION is-not-defined, 11 tasks returned with their calendar-data; signed in
-- with its app password, a different account each request (the dav-sync data file).
local body = '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
  .. '<D:prop><D:getetag/><C:calendar-data/></D:prop><C:filter>'
  .. '<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO">'
  .. '<C:prop-filter name="SUMMARY"><C:text-match>Item 99</C:text-match></C:prop-filter>'
  .. '<C:prop-filter name="DESCRIPTION"><C:is-not-defined/></C:prop-filter>'
  .. '</C:comp-filter></C:comp-filter></C:filter></C:calendar-query>'

function request()
  local n = b.user()
  local headers = {
    ["Authorization"] = b.data.tokens[n],
    ["Content-Type"] = "application/xml",
    ["Depth"] = "1",
  }
  return wrk.format("REPORT", "/dav/calendars/" .. b.data.lists[n] .. "/", headers, body)
end

function response(status, headers, body)
  b.check(status, body)
end
