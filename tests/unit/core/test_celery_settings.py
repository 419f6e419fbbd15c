"""Celery settings: broker URLs are checked up front, naming the supported schemes."""

import pytest
from pydantic import ValidationError

from tests.conftest import make_settings

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://h:6380/1", "amqp://guest:guest@h:5672//"]
)
def test_redis_and_rabbitmq_urls_are_accepted(tmp_path, url):
    assert make_settings(tmp_path, celery_broker_url=url).celery_broker_url == url


def test_empty_url_means_no_celery(tmp_path):
    assert make_settings(tmp_path, celery_broker_url="").celery_broker_url is None


@pytest.mark.parametrize("url", ["http://user:s3cret@h/0", "127.0.0.1:6379", "sqs://"])
def test_other_brokers_are_refused_with_the_alternatives(tmp_path, url):
    with pytest.raises(ValidationError) as exc:
        make_settings(tmp_path, celery_broker_url=url)
    message = exc.value.errors()[0]["msg"]
    assert "RAGOPS_CELERY_BROKER_URL" in message
    assert "redis://" in message and "amqp://" in message
    assert "s3cret" not in message  # our message names the scheme, never credentials
