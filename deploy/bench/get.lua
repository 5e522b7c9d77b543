-- wrk script: GET /ngsi-ld/v1/entities/{id} over 1,000 ids urn:ngsi-ld:AirQualityObserved:w-0000..0999 (see BENCHMARKS.md)
local n = 0
request = function()
  n = (n + 1) % 1000
  return wrk.format("GET", string.format("/ngsi-ld/v1/entities/urn:ngsi-ld:AirQualityObserved:w-%04d", n))
end
