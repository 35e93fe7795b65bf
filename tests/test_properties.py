"""Property-based tests (hypothesis) of the configuration loader and the API:
any input gets either a valid result or one error line with the right code;
`pylb config check` agrees with what ApplyConfig accepts; GetConfig after
ApplyConfig gives back the configuration that was applied."""

from __future__ import annotations

import grpc
import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from pylb import config
from pylb.errors import ConfigError, PylbError
from pylb.v1 import pylb_pb2 as pb

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])

# Values that are sometimes right, often nearly right, for the dataplane of
# the `dp` fixture (p0 10.0.0.1/24, p1 10.0.1.1/24 and their IPv6 networks).
addresses = st.sampled_from(["10.0.0.100", "10.0.0.101", "10.0.1.20", "10.0.1.21", "2001:db8::100",
                             "::ffff:10.0.0.5", "10.0.0.300", "0.0.0.0", "224.0.0.1", "", "x"])
backend_texts = st.sampled_from(["10.0.1.20:8080", "10.0.1.21", "10.0.1.22:80", "[2001:db8:1::20]:80",
                                 "10.0.1.20:0", "10.0.1.20:70000", "10.0.1.23:x"])
numbers = st.one_of(st.integers(-2, 70000), st.sampled_from([65537, 4294967295, 2 ** 64]),
                    st.booleans(), st.text(max_size=3))
backend = st.one_of(backend_texts, st.fixed_dictionaries(
    {"address": backend_texts},
    optional={"weight": numbers, "state": st.sampled_from(["up", "drain", "down", "off"])}))
health = st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["tcp", "http", "udp", "none", "icmp"]),
    "interval_ms": numbers, "timeout_ms": numbers, "rise": numbers, "fall": numbers,
    "path": st.sampled_from(["/", "/healthz", "no-slash", "/a b", "/" + "p" * 2000])})
service = st.fixed_dictionaries(
    {"vip": addresses, "port": st.sampled_from([80, 53, 0, 70000, "80"])},
    optional={"proto": st.sampled_from(["tcp", "udp", "sctp"]),
              "method": st.sampled_from(["nat", "dr", "tunnel", "snat"]),
              "scheduler": st.sampled_from(["maglev", "source", "wrr", "wlc", "rr"]),
              "table_size": st.sampled_from([65537, 251, 65536, 1048573, 1048583, 1]),
              "persistence": numbers, "down_reset": st.sampled_from([True, False, "yes"]),
              "backends": st.lists(backend, max_size=4), "health_check": health})
route = st.fixed_dictionaries(
    {"prefix": st.sampled_from(["198.51.100.0/24", "198.51.101.0/24", "10.0.1.0/24",
                                "198.51.100.1/24", "2001:db8:77::/48", "nope"]),
     "via": st.lists(st.fixed_dictionaries(
         {"port": st.sampled_from(["p0", "p1"])},
         optional={"gateway": st.sampled_from(["10.0.1.254", "10.0.0.254", "2001:db8:1::fe"])}),
         min_size=0, max_size=2)})
vip = st.fixed_dictionaries(
    {"prefix": st.sampled_from(["203.0.113.0/24", "203.0.114.1/32", "203.0.113.1/24"])},
    optional={"method": st.sampled_from(["ipip", "gre", "dr", "nat"]),
              "table_size": st.sampled_from([65537, 10]),
              "backends": st.lists(st.sampled_from(["10.0.1.30", "10.0.1.31", "2001:db8:1::5"]),
                                   max_size=2, unique=True)})
documents = st.fixed_dictionaries({}, optional={
    "services": st.lists(service, max_size=3), "routes": st.lists(route, max_size=2),
    "vips": st.lists(vip, max_size=2),
    "timeouts": st.dictionaries(st.sampled_from(["udp", "tcp_fin", "tcp"]), numbers, max_size=2)})


def one_line(message: str) -> bool:
    return "\n" not in message and 0 < len(message) <= 400


@SETTINGS
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(
    lambda b: b.decode("latin-1"))))
def test_any_text_loads_or_fails_with_one_line(text):
    try:
        config.load_config("(text)", text=text)
    except ConfigError as e:
        assert one_line(str(e)), str(e)


@SETTINGS
@given(documents)
def test_a_loaded_file_dumps_to_one_that_loads_the_same(doc):
    try:
        c = config.load_config("(doc)", text=yaml.safe_dump(doc))
    except ConfigError as e:
        assert one_line(str(e)) and e.key
        return
    again = config.load_config("(doc)", text=config.dump(c))
    assert again == c


@SETTINGS
@given(documents)
def test_check_agrees_with_apply_and_get_returns_what_was_applied(api, doc):
    """A file the check accepts is applied, unless the running dataplane
    refuses something only it can judge (a port, a gateway on a network, a
    neighbour); one the check refuses is refused by ApplyConfig with the same
    line, and changes nothing. After an apply, GetConfig is that file."""
    stub, dp, _ = api
    text = yaml.safe_dump(doc)
    before = stub.GetConfig(pb.GetConfigRequest()).yaml
    try:
        want = config.load_config("(request)", text=text)
    except ConfigError as e:
        with pytest.raises(grpc.RpcError) as refused:
            stub.ApplyConfig(pb.ApplyConfigRequest(yaml=text))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert refused.value.details() == str(e)
        assert stub.GetConfig(pb.GetConfigRequest()).yaml == before
        event("refused by the check and by ApplyConfig")
        return
    try:
        stub.ApplyConfig(pb.ApplyConfigRequest(yaml=text))
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                            grpc.StatusCode.FAILED_PRECONDITION,
                            grpc.StatusCode.ALREADY_EXISTS), e.details()
        assert one_line(e.details()) and "nothing was changed" in e.details()
        assert stub.GetConfig(pb.GetConfigRequest()).yaml == before
        event(f"checked, refused by the dataplane: {e.code().name} {e.details()}")
        return
    event("applied")
    got = config.load_config("(request)", text=stub.GetConfig(pb.GetConfigRequest()).yaml)
    assert set(got.services) == set(want.services) and set(got.routes) == set(want.routes)
    assert set(got.vips) == set(want.vips)
    assert {k: v for k, v in got.timeouts if k in dict(want.timeouts)} == dict(want.timeouts)


service_requests = st.builds(
    pb.Service,
    key=st.builds(pb.ServiceKey, vip=addresses, port=st.integers(0, 2 ** 32 - 1),
                  protocol=st.integers(0, 3)),
    method=st.integers(0, 5), scheduler=st.integers(0, 5),
    table_size=st.sampled_from([0, 65537, 65536, 2 ** 32 - 1, 13]),
    persistence_seconds=st.integers(0, 2 ** 32 - 1), persistence_prefix=st.integers(0, 300),
    local_addresses=st.lists(addresses, max_size=2),
    backends=st.lists(st.builds(pb.Backend, address=addresses, port=st.integers(0, 70000),
                                weight=st.integers(0, 2 ** 32 - 1), state=st.integers(0, 4)),
                      max_size=3))


@SETTINGS
@given(service_requests)
def test_any_add_service_request_is_served_or_refused_with_its_code(api, request):
    stub, dp, _ = api
    try:
        s = stub.AddService(request)
    except grpc.RpcError as e:
        assert e.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.ALREADY_EXISTS,
                            grpc.StatusCode.RESOURCE_EXHAUSTED), (e.code(), e.details())
        assert one_line(e.details())
        return
    assert stub.GetService(s.key) == s
    stub.DeleteService(s.key)
    assert dp.services() == []


def test_a_file_error_stays_one_line_whatever_it_quotes():
    e = ConfigError("f.yaml", "k", "a\nb" + "x" * 1000, 3)
    assert one_line(str(e)) and isinstance(e, PylbError)
    assert str(e).startswith("f.yaml:3: k: a\\nbxxx") and str(e).endswith("...")
