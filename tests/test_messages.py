import logging

import keras

from losslandscape.messages import report


def test_messages_go_to_stdout_or_to_the_logger_as_keras_output_does(capsys, caplog):
    report("losslandscape: one")
    assert capsys.readouterr().out == "losslandscape: one\n"
    keras.config.disable_interactive_logging()
    try:
        with caplog.at_level(logging.INFO, logger="losslandscape"):
            report("losslandscape: two")
    finally:
        keras.config.enable_interactive_logging()
    assert capsys.readouterr().out == ""
    assert [record.getMessage() for record in caplog.records] == ["losslandscape: two"]
