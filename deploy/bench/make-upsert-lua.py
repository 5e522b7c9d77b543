#!/usr/bin/env python3
"""Writes a wrk script that upserts 1,000 AirQualityObserved-like entities per
request, alternating two states so that every request changes every entity.

    python3 make-upsert-lua.py u- > upsert-u.lua
    python3 make-upsert-lua.py v- > upsert-v.lua
    wrk -t1 -c1 -d20s --latency -s upsert-u.lua http://127.0.0.1:1026 &
    wrk -t1 -c1 -d20s --latency -s upsert-v.lua http://127.0.0.1:1026

Entities/s = requests/s x 1000 (sum over the wrk processes). See BENCHMARKS.md.
"""
import json
import sys

prefix = sys.argv[1] if len(sys.argv) > 1 else "u-"


def body(r):
    ents = []
    for i in range(1000):
        ents.append({
            "id": "urn:ngsi-ld:AirQualityObserved:%s%04d" % (prefix, i),
            "type": "AirQualityObserved",
            "dateObserved": {"type": "Property", "value": "2024-01-10T10:00:00Z"},
            "no2": {"type": "Property", "value": 40 + r + i % 7, "unitCode": "GQ", "observedAt": "2024-01-10T10:00:00Z"},
            "pm10": {"type": "Property", "value": 20 + i % 30, "unitCode": "GQ", "observedAt": "2024-01-10T10:00:00Z"},
            "pm25": {"type": "Property", "value": 12, "unitCode": "GQ"},
            "o3": {"type": "Property", "value": 60 + i % 40, "unitCode": "GQ"},
            "temperature": {"type": "Property", "value": 12.1, "unitCode": "CEL"},
            "airQualityLevel": {"type": "Property", "value": "moderate"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [10.79, 45.15]}},
            "refPointOfInterest": {"type": "Relationship", "object": "urn:ngsi-ld:PointOfInterest:MN-%d" % (i % 10)},
        })
    return json.dumps(ents)


print("local bodies = {%s, %s}" % (json.dumps(body(0)), json.dumps(body(1))))
print('local n = 0\nwrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"')
print('request = function()\n  n = n + 1\n  return wrk.format(nil, "/ngsi-ld/v1/entityOperations/upsert", nil, bodies[(n % 2) + 1])\nend')
