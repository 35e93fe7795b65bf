"""Migration from IPVS (pylb.importers, `pylb config import`): realistic
ipvsadm-save -n output and keepalived.conf become a configuration that
`pylb config check` accepts and that, applied to a running dataplane
through the domain and the API, lists (`pylbctl ipvs -L -n`) as IPVS would
list the source; what does not map is reported with its line."""
from __future__ import annotations

import subprocess
import sys

import pytest

from pylb import ctl, importers
from pylb.config import load_config
from pylb.errors import InvalidArgument
from pylb.v1 import pylb_pb2 as pb
from test_cli import ROOT

IPVSADM_SAVE = """\
-A -t 10.0.0.100:80 -s wrr -p 300 -M 255.255.255.0
-a -t 10.0.0.100:80 -r 10.0.1.11:8080 -m -w 2
-a -t 10.0.0.100:80 -r 10.0.1.12:8080 -m -w 1 -x 5000
-A -u 10.0.0.100:53 -s mh
-a -u 10.0.0.100:53 -r 10.0.1.11:53 -g -w 1
-a -u 10.0.0.100:53 -r 10.0.1.12:53 -g -w 0
-A -t 10.0.0.101:443 -s wlc
-a -t 10.0.0.101:443 -r 10.0.1.13:443 -i -w 3
-a -t 10.0.0.101:443 -r 10.0.1.14:443 -i -w 1
-A -t [2001:db8::100]:443 -s sh
-a -t [2001:db8::100]:443 -r [2001:db8:1::11]:443 -i -w 1
"""

# `ipvsadm -L -n` of the file above, as IPVS lists it (services in pylb's order).
IPVS_LISTING = """\
IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  10.0.0.100:80 wrr persistent 300 mask 255.255.255.0
  -> 10.0.1.11:8080               Masq    2      0          0
  -> 10.0.1.12:8080               Masq    1      0          0
UDP  10.0.0.100:53 mh
  -> 10.0.1.11:53                 Route   1      0          0
  -> 10.0.1.12:53                 Route   0      0          0
TCP  10.0.0.101:443 wlc
  -> 10.0.1.13:443                Tunnel  3      0          0
  -> 10.0.1.14:443                Tunnel  1      0          0
TCP  [2001:db8::100]:443 sh
  -> [2001:db8:1::11]:443         Tunnel  1      0          0"""

KEEPALIVED_CONF = """\
! Configuration File for keepalived
global_defs {
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        10.0.0.100
    }
}

virtual_server 10.0.0.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    protocol TCP

    real_server 10.0.1.11 8080 {
        weight 2
        inhibit_on_failure
        HTTP_GET {
            url {
              path /healthz
              status_code 204
            }
            connect_timeout 3
            retry 2
        }
    }
    real_server 10.0.1.12 8080 {
        weight 1
        uthreshold 5000
        HTTP_GET {
            url {
              path /healthz
              status_code 204
            }
            connect_timeout 3
            retry 2
        }
    }
}

virtual_server 10.0.0.100 53 {
    delay_loop 10
    lb_algo mh
    lb_kind DR
    protocol UDP
    real_server 10.0.1.11 53 {
        weight 1
    }
    real_server 10.0.1.12 53 {
        weight 0
    }
}

virtual_server 10.0.0.101 443 {
    lb_algo wlc
    lb_kind TUN
    real_server 10.0.1.13 443 {
        weight 3
        TCP_CHECK {
            connect_port 443
            connect_timeout 2
        }
    }
    real_server 10.0.1.14 443 {
        weight 1
        TCP_CHECK {
            connect_port 443
            connect_timeout 2
        }
    }
}

virtual_server 2001:db8::100 443 {
    lb_algo sh
    lb_kind TUN
    protocol TCP
    real_server 2001:db8:1::11 443 {
        weight 1
    }
}
"""

# What does not map (ipvsadm and keepalived), each with its line.
UNMAPPED_IPVSADM = """\
-A -t 10.0.0.102:80 -s rr
-a -t 10.0.0.102:80 -r 10.0.1.13:80 -m -w 5
-A -f 1 -s rr
-a -f 1 -r 10.0.1.14:0 -g -w 1
-A -t 10.0.0.103:80 -s lblc -o
-a -t 10.0.0.103:80 -r 10.0.1.13:80 -g -w 1 -y 10
-a -t 10.0.0.103:80 -r 10.0.1.14:80 -g -w 1
-a -t 10.0.0.104:80 -r 10.0.1.14:80 -g -w 1
"""
UNMAPPED_KEEPALIVED = """\
virtual_server 10.0.0.102 80 {
    lb_algo sed
    sorry_server 10.0.1.200 8080
    real_server 10.0.1.13 80 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check 10.0.1.13"
        }
    }
    real_server 10.0.1.14 80 {
        SSL_GET {
            url { path /x }
        }
    }
}
virtual_server fwmark 1 {
    lb_algo rr
}
virtual_server_group web {
    10.0.0.105 80
}
"""


@pytest.mark.fixture
@pytest.mark.parametrize("fmt, text", [("ipvsadm", IPVSADM_SAVE), ("keepalived", KEEPALIVED_CONF)])
def test_an_import_applied_lists_as_ipvs_listed_the_source(api, fmt, text, tmp_path):
    stub, _, _ = api
    imported = importers.FORMATS[fmt](text, "source")
    if fmt == "ipvsadm":             # (keepalived's one line is checked below)
        assert imported.report == []
    source, path = tmp_path / fmt, tmp_path / "imported.yaml"
    source.write_text(text)
    r = subprocess.run([sys.executable, "-m", "pylb", "config", "import", fmt, str(source),
                        "-o", str(path)], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and f"{len(imported.config.services)} service(s)" in r.stderr, \
        r.stderr
    r = subprocess.run([sys.executable, "-m", "pylb", "config", "check", str(path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0 and ": ok: 4 service(s) with 7 backend(s)" in r.stdout, r.stderr
    stub.ApplyConfig(pb.ApplyConfigRequest(yaml=path.read_text()))
    services = list(stub.ListServices(pb.ListServicesRequest()).services)
    assert ctl.ipvs_view(services) == IPVS_LISTING
    config = load_config(str(path))
    if fmt == "keepalived":          # the checks came along
        web = config.service(("10.0.0.100", 80, "tcp")).health_check
        assert (web.type, web.path, web.expect_status, web.interval_ms, web.timeout_ms,
                web.fall) == ("http", "/healthz", 204, 6000, 3000, 3)
        tls = config.service(("10.0.0.101", 443, "tcp")).health_check
        assert (tls.type, tls.port, tls.timeout_ms) == ("tcp", 443, 2000)
        assert imported.report == ["source:6: vrrp_instance: not a virtual server (pylb's fleet "
                                   "uses BGP and connection sync; see docs/fleet.md); skipped"]
    assert config.service(("10.0.0.100", 80, "tcp")).backends[1].max_connections == 5000


@pytest.mark.unit
def test_what_does_not_map_is_reported_with_its_line():
    r = importers.ipvsadm(UNMAPPED_IPVSADM, "save")
    assert [s.name() for s in r.config.services] == ["10.0.0.102:80/tcp", "10.0.0.103:80/tcp"]
    assert [b.weight for b in r.config.service(("10.0.0.102", 80, "tcp")).backends] == [1]
    assert r.report == [
        "save:1: scheduler rr: pylb has no weightless rr; wrr with every weight 1 (0 stays 0)",
        "save:3: fwmark and SCTP services have no pylb equivalent; skipped",
        "save:4: fwmark and SCTP services have no pylb equivalent; skipped",
        "save:5: scheduler lblc: not in pylb; wlc is the nearest",
        "save:5: one-packet scheduling (on): not in pylb; ignored",
        "save:6: lower threshold (-y): pylb takes new connections again as soon as the "
        "backend is below max_connections",
        "save:8: real server of 10.0.0.104:80/tcp, a service not added before; skipped"]
    r = importers.keepalived(UNMAPPED_KEEPALIVED, "ka")
    assert [s.name() for s in r.config.services] == ["10.0.0.102:80/tcp"]
    assert r.report == [
        "ka:2: scheduler sed: not in pylb; wlc is the nearest",
        "ka:3: sorry_server: no pylb equivalent; ignored",
        "ka:5: MISC_CHECK: no pylb equivalent; not checked",
        "ka:10: SSL_GET: pylb's HTTP check has no TLS; a TCP check of the port instead",
        "ka:1: real servers are checked differently: pylb has one check per service; "
        "that of ka:4",
        "ka:15: virtual_server fwmark 1: fwmark and group services have no pylb equivalent; "
        "skipped",
        "ka:18: virtual_server_group: not a virtual server (pylb's fleet uses BGP and "
        "connection sync; see docs/fleet.md); skipped"]
    # A virtual server with no real server yet is a service with none.
    empty = importers.keepalived("virtual_server 10.0.0.1 80 {\n    lb_kind NAT\n}\n", "ka")
    assert [(s.name(), s.backends, s.health_check) for s in empty.config.services] == \
        [("10.0.0.1:80/tcp", (), None)] and empty.report == []
    with pytest.raises(InvalidArgument, match="ka: a '{' is never closed"):
        importers.keepalived("virtual_server 10.0.0.1 80 {\n", "ka")


def test_an_ipvs_gue_tunnel_becomes_a_gue_service():
    r = importers.ipvsadm("-A -u 10.0.0.100:53 -s mh\n"
                          "-a -u 10.0.0.100:53 -r 10.0.1.11:53 -i --tun-type gue --tun-port 6080\n"
                          "-a -u 10.0.0.100:53 -r 10.0.1.12:53 -i --tun-type gue --tun-port 5555\n"
                          "-A -u 10.0.0.101:53 -s mh\n"
                          "-a -u 10.0.0.101:53 -r 10.0.1.11:53 -i --tun-type gre\n", "save")
    assert [s.method for s in r.config.services] == ["gue", "tunnel"]
    assert r.report == [
        "save:3: --tun-port 5555: pylb's GUE goes to port 6080; set the backend to receive it "
        "there",
        "save:5: --tun-type: pylb's tunnel is IPIP (or GUE); ignored"]
