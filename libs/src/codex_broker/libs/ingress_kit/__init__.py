"""The ingress kit: one `Platform` adapter protocol and, written once on it, the delivery machinery
every chat ingress needs (inbound store, outbound executor, live view, dead letters).

An ingress service = an adapter implementing `Platform` + its platform connection feeding
`InboundStore` + an `OutboundExecutor` consuming `outbound:{platform}`. `FakePlatform` is the
in-memory adapter for tests.
"""
