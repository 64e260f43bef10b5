frac = lesion_fraction(busi_train.masks)
i_max = int(frac.argmax())
print(f"{busi_train.used} train image #{i_max}: lesion covers {frac[i_max]:.1%} of the image; "
      f"class {busi_train.labels[i_max].item()} ({busi_train.label_names[busi_train.labels[i_max].item()]})")
show_with_masks(busi_train, [i_max], title="largest lesion in the training split")
plt.show()
