"""The Demo service (ping and echo) as a gunicorn_thrift application: the seed's
stack. Run by perf/peers/run.sh:

    gunicorn_thrift gunicorn_app:app -k thriftpy_gevent \
        --thrift-transport-factory thriftpy2.transport:TFramedTransportFactory ...
"""
import os

import thriftpy2
from thriftpy2.thrift import TProcessor

HERE = os.path.dirname(os.path.abspath(__file__))
demo = thriftpy2.load(os.path.join(HERE, "../../../src/bin/ringsoa-demo/demo.thrift"),
                      module_name="demo_thrift")


class Handler:
    def ping(self):
        pass

    def echo(self, msg):
        return msg


app = TProcessor(demo.Demo, Handler())
