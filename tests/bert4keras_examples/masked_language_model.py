#! -*- coding: utf-8 -*-
# kerasformer port of bojone/bert4keras@c1ae0dc examples/basic_masked_language_model.py (Apache-2.0); tools/port_bert4keras_examples.py, masked_language_model.diff
# 测试代码可用性: MLM

import os
import numpy as np
from kerasformer.models import build_transformer_model
from kerasformer.tokenizers import Tokenizer
from kerasformer.snippets import to_array

config_path = os.path.join(os.path.dirname(__file__), '../fixtures/models/bert/bert_config.json')
checkpoint_path = os.path.join(os.path.dirname(__file__), '../fixtures/models/bert/bert_model.ckpt')
dict_path = os.path.join(os.path.dirname(__file__), '../fixtures/models/bert/vocab.txt')

tokenizer = Tokenizer(dict_path, do_lower_case=True)  # 建立分词器
model = build_transformer_model(
    config_path=config_path, checkpoint_path=checkpoint_path, with_mlm=True
)  # 建立模型，加载权重

token_ids, segment_ids = tokenizer.encode(u'科学技术是第一生产力')

# mask掉“技术”
token_ids[3] = token_ids[4] = tokenizer._token_mask_id
token_ids, segment_ids = to_array([token_ids], [segment_ids])

# 用mlm模型预测被mask掉的部分
probas = model.predict([token_ids, segment_ids])[0]
print(tokenizer.decode(probas[3:5].argmax(axis=1)))  # 结果正是“技术”
